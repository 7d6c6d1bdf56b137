"""The HTTP cloud client against a fault-injecting loopback server: retries, timeouts, cuts."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from benchmarks.servers import serve_in_thread
from edge.clouds.breaker import CircuitBreaker
from edge.clouds.fallback import FallbackCloud
from edge.clouds.http import HttpCloud
from edge.core.cloud import CloudEnd, CloudRequest, CloudText
from protocol.errors import CloudUnavailable, UpstreamError
from protocol.wire import SSE_DONE, CompletionChoice, CompletionChunk, encode_sse

REQUEST = CloudRequest(call_id="c", answer_id="a", prompt="p", messages=[], max_tokens=4)


def faulty_cloud(hits: Counter[str]) -> FastAPI:
    """Behaves as the requested model's name says: fail-once, slow-start, cut, slow-stream."""
    app = FastAPI()

    def chunk(text: str, finish: str | None = None) -> bytes:
        choice = CompletionChoice(text=text, finish_reason=finish)  # type: ignore[arg-type]
        return encode_sse(CompletionChunk(id="x", model="m", choices=[choice]))

    @app.post("/v1/completions")
    async def complete(request: Request) -> Response:
        model = (await request.json())["model"]
        hits[model] += 1
        if model == "fail-always" or (model == "fail-once" and hits[model] == 1):
            return JSONResponse({"error": {"message": "busy", "type": "x"}}, status_code=503)
        if model == "limited-once" and hits[model] == 1:
            body = {"error": {"message": "slow down", "type": "rate_limit"}}
            return JSONResponse(body, status_code=429, headers={"Retry-After": "0.3"})
        if model == "bad-request":
            body = {"error": {"message": "max_tokens is too large", "type": "x"}}
            return JSONResponse(body, status_code=400)
        if model == "slow-start":
            await asyncio.sleep(3)

        async def body() -> AsyncIterator[bytes]:
            for i in range(4):
                if model == "slow-stream":
                    await asyncio.sleep(0.4)
                if model == "stall" and i == 2:
                    await asyncio.sleep(3)
                finish = None if model == "no-finish" else "length" if i == 3 else None
                yield chunk(f" t{i}", finish)
                if model == "cut" and i == 1:
                    raise RuntimeError("connection cut")
                if model == "bad-json" and i == 1:
                    yield b"data: {oops\n\n"
            yield SSE_DONE

        return StreamingResponse(body(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Counter[str]]]:
    hits: Counter[str] = Counter()
    with serve_in_thread(faulty_cloud(hits)) as url:
        yield url, hits


def cloud(url: str, model: str, **options: float) -> HttpCloud:
    return HttpCloud(url, model=model, **options)  # type: ignore[arg-type]


def test_retries_before_the_first_token(server: tuple[str, Counter[str]]) -> None:
    url, hits = server
    items = list(cloud(url, "fail-once", retries=2).stream(REQUEST))
    assert [i.text for i in items if isinstance(i, CloudText)] == [" t0", " t1", " t2", " t3"]
    assert hits["fail-once"] == 2


@pytest.mark.parametrize(
    ("model", "retries", "reason"), [("cut", 3, "was cut"), ("bad-json", 0, "invalid stream chunk")]
)
def test_a_stream_broken_after_it_began_falls_back_keeping_what_arrived(
    server: tuple[str, Counter[str]], model: str, retries: int, reason: str
) -> None:
    url, hits = server  # no retry after the stream began
    items = list(FallbackCloud(cloud(url, model, retries=retries)).stream(REQUEST))
    assert [i.text for i in items if isinstance(i, CloudText)] == [" t0", " t1"]
    end = items[-1]
    assert isinstance(end, CloudEnd)
    assert (end.outcome, end.completion_tokens) == ("fallback", 2)
    assert reason in end.reason
    assert hits[model] == 1


def test_first_token_timeout(server: tuple[str, Counter[str]]) -> None:
    url, _ = server  # slow-start answers after 3 s: only a timeout makes this call fail
    with pytest.raises(CloudUnavailable, match="did not answer in time"):
        list(cloud(url, "slow-start", retries=0, first_token_timeout_s=0.5).stream(REQUEST))


def test_total_timeout(server: tuple[str, Counter[str]]) -> None:
    url, _ = server
    slow = cloud(url, "slow-stream", retries=0, total_timeout_s=0.6)
    received = []
    with pytest.raises(CloudUnavailable, match=r"longer than 0\.6 s"):
        received.extend(slow.stream(REQUEST))
    assert 0 < len(received) < 4


def test_retry_after_is_honoured_before_the_first_token(server: tuple[str, Counter[str]]) -> None:
    url, hits = server
    started = time.monotonic()
    items = list(cloud(url, "limited-once", retries=1).stream(REQUEST))
    assert hits["limited-once"] == 2
    assert time.monotonic() - started >= 0.3
    assert isinstance(items[-1], CloudEnd)


def test_a_missing_finish_reason_hands_back_and_says_so(server: tuple[str, Counter[str]]) -> None:
    url, _ = server
    end = list(cloud(url, "no-finish", retries=0).stream(REQUEST))[-1]
    assert isinstance(end, CloudEnd)
    assert end.finish_reason == "length"
    assert "no finish_reason" in end.reason


def test_a_stall_mid_stream_is_reported_as_a_stall(server: tuple[str, Counter[str]]) -> None:
    url, _ = server
    stalled = cloud(url, "stall", retries=0, first_token_timeout_s=0.5)
    with pytest.raises(CloudUnavailable, match="stalled"):
        list(stalled.stream(REQUEST))


def test_a_refused_request_names_the_servers_reason(server: tuple[str, Counter[str]]) -> None:
    url, hits = server
    with pytest.raises(UpstreamError, match="400: max_tokens is too large") as caught:
        list(cloud(url, "bad-request", retries=3).stream(REQUEST))
    assert f"{url}/completions" in caught.value.message
    assert hits["bad-request"] == 1  # a request error is not retried


def test_a_refused_request_does_not_open_the_breaker(server: tuple[str, Counter[str]]) -> None:
    url, _ = server
    breaker = CircuitBreaker(cloud(url, "bad-request", retries=0), failures=2, cooldown_s=60)
    for _ in range(4):
        ends = list(FallbackCloud(breaker).stream(REQUEST))
        assert "max_tokens is too large" in ends[-1].reason  # type: ignore[union-attr]
    assert breaker.state == "closed"
    outage = CircuitBreaker(cloud(url, "fail-always", retries=0), failures=2, cooldown_s=60)
    for _ in range(2):
        list(FallbackCloud(outage).stream(REQUEST))
    assert outage.state == "open"

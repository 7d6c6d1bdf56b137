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
from edge.cloud import CloudEnd, CloudRequest, CloudText
from edge.fallback import FallbackCloud
from edge.http_cloud import HttpCloud
from protocol.errors import CloudUnavailable
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
        if model == "fail-once" and hits[model] == 1:
            return JSONResponse({"error": {"message": "busy", "type": "x"}}, status_code=503)
        if model == "slow-start":
            await asyncio.sleep(3)

        async def body() -> AsyncIterator[bytes]:
            for i in range(4):
                if model == "slow-stream":
                    await asyncio.sleep(0.4)
                yield chunk(f" t{i}", "length" if i == 3 else None)
                if model == "cut" and i == 1:
                    raise RuntimeError("connection cut")
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


def test_no_retry_after_the_stream_began(server: tuple[str, Counter[str]]) -> None:
    url, hits = server
    items = list(FallbackCloud(cloud(url, "cut", retries=3)).stream(REQUEST))
    assert [i.text for i in items if isinstance(i, CloudText)] == [" t0", " t1"]
    end = items[-1]
    assert isinstance(end, CloudEnd)
    assert (end.outcome, end.completion_tokens) == ("fallback", 2)
    assert hits["cut"] == 1


def test_first_token_timeout(server: tuple[str, Counter[str]]) -> None:
    url, _ = server
    started = time.monotonic()
    with pytest.raises(CloudUnavailable):
        list(cloud(url, "slow-start", retries=0, first_token_timeout_s=0.5).stream(REQUEST))
    assert time.monotonic() - started < 2.5


def test_total_timeout(server: tuple[str, Counter[str]]) -> None:
    url, _ = server
    slow = cloud(url, "slow-stream", retries=0, total_timeout_s=0.6)
    received = []
    with pytest.raises(CloudUnavailable, match=r"longer than 0\.6 s"):
        received.extend(slow.stream(REQUEST))
    assert 0 < len(received) < 4

"""relay-cloud under several users: everyone answered in turn, a bounded queue, kept contexts.

Order is read where the server records it, not from clocks: :class:`Recorder` wraps the
real engine, notes each request's arrival, start and finish in the server's event loop,
and holds the arrivals until the test lets them go, so fifty requests really wait in
line however slow the machine. How soon first tokens come is a benchmark
(:mod:`benchmarks.concurrency`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks.servers import serve_in_thread
from cloud.app import create_app
from cloud.engine import Delta, Generation
from cloud.llama_engine import LlamaEngine
from cloud.settings import CloudSettings
from protocol.sampling import SamplingParams

PROMPT = "The history of the harbour town, told in short chapters. Chapter"
HANG_S = 600.0
"""Only a guard against a hang (fifty answers in line on two busy cores take minutes):
nothing here is timed."""


class Recorder:
    """An engine wrapper: requests held at arrival until :meth:`release`, and each one's
    ``arrived``, ``started`` (the engine accepted it) and ``finished`` noted in order."""

    def __init__(self, engine: LlamaEngine) -> None:
        self.engine = engine
        self.model_id = engine.model_id
        self.events: list[tuple[str, int]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: asyncio.Event | None = None

    async def start(self) -> None:
        self._loop, self._open = asyncio.get_running_loop(), asyncio.Event()
        await self.engine.start()

    async def aclose(self) -> None:
        await self.engine.aclose()

    def release(self) -> None:
        """Let the held requests (and every later one) through; from any thread."""
        assert self._loop is not None
        assert self._open is not None
        self._loop.call_soon_threadsafe(self._open.set)

    def seen(self, kind: str) -> list[int]:
        """The request numbers of the ``kind`` events, in the order the server saw them."""
        return [index for event, index in list(self.events) if event == kind]

    async def complete(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        index = int(prompt.rsplit(" ", 1)[-1].rstrip(":"))
        self.events.append(("arrived", index))
        assert self._open is not None
        await self._open.wait()
        started = False
        async for delta in self.engine.complete(prompt, generation):
            if not started:
                self.events.append(("started", index))
                started = True
            yield delta
        self.events.append(("finished", index))


@contextmanager
def recorded_cloud(model: Path, max_queue: int = 64) -> Iterator[tuple[str, Recorder]]:
    """relay-cloud in this process around a :class:`Recorder`; its ``/v1`` URL and the recorder."""
    recorder = Recorder(LlamaEngine.load(model, n_ctx=1024, n_threads=2))
    settings = CloudSettings(insecure_no_auth=True, max_queue=max_queue, request_timeout_s=HANG_S)
    with serve_in_thread(create_app(settings, engine=recorder)) as url:  # type: ignore[arg-type]
        yield url, recorder


async def arrived(recorder: Recorder, count: int) -> None:
    """Wait until the server has taken ``count`` requests in."""

    async def poll() -> None:
        while len(recorder.seen("arrived")) < count:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), HANG_S)


async def one(client: httpx.AsyncClient, url: str, index: int) -> tuple[int, int]:
    """(status, completion tokens) of one greedy streamed completion of 8 tokens."""
    body = {"prompt": f"{PROMPT} {index}:", "max_tokens": 8, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    tokens = 0
    async with client.stream("POST", f"{url}/completions", json=body) as response:
        async for line in response.aiter_lines():
            if '"completion_tokens"' in line:
                tokens = int(line.split('"completion_tokens":')[1].split(",")[0])
        return response.status_code, tokens


async def in_line(url: str, recorder: Recorder, count: int) -> list[tuple[int, int]]:
    """``count`` requests sent one after another, each taken in before the next is sent;
    all of them then wait in line until the recorder lets them go."""
    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(timeout=HANG_S, limits=limits) as client:
        answers = []
        for index in range(count):
            answers.append(asyncio.create_task(one(client, url, index)))
            await arrived(recorder, index + 1)
        recorder.release()
        return await asyncio.gather(*answers)


def test_fifty_concurrent_streams_all_finish_first_come_first_served(
    cloud_model_path: Path,
) -> None:
    with recorded_cloud(cloud_model_path) as (url, recorder):
        results = asyncio.run(in_line(url, recorder, 50))
    assert results == [(200, 8)] * 50  # greedy: no early end of text, every answer has 8 tokens
    assert recorder.seen("arrived") == list(range(50))
    # First come, first served, however the engine batches: no request finishes before
    # an earlier one has started.
    position = {event: at for at, event in enumerate(recorder.events)}
    for later in range(50):
        done = position["finished", later]
        assert all(position["started", earlier] < done for earlier in range(later))


def short(index: int) -> dict[str, object]:
    return {"prompt": f"{PROMPT} {index}:", "max_tokens": 1}


def test_a_full_queue_answers_429_with_retry_after(cloud_model_path: Path) -> None:
    async def full(url: str, recorder: Recorder) -> tuple[list[int], httpx.Response]:
        async with httpx.AsyncClient(timeout=HANG_S) as client:
            waiting = [asyncio.create_task(one(client, url, i)) for i in range(2)]
            await arrived(recorder, 2)  # the queue is full: both are held
            refused = await client.post(f"{url}/completions", json=short(2))
            recorder.release()
            return [status for status, _ in await asyncio.gather(*waiting)], refused

    with recorded_cloud(cloud_model_path, max_queue=2) as (url, recorder):
        statuses, refused = asyncio.run(full(url, recorder))
        again = httpx.post(f"{url}/completions", json=short(3), timeout=HANG_S)
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert again.status_code == 200  # once the queue drained, requests are taken again


def test_interleaved_conversations_keep_their_contexts(slm_path: Path) -> None:
    engine = LlamaEngine.load(slm_path, n_ctx=2048, n_threads=2, prompt_slots=4)
    greedy = Generation(SamplingParams(temperature=0.0), max_tokens=4)
    stories = [f"{PROMPT} {name}. " + "The boats came in and went out again. " * 20
               for name in ("Anna", "Bruno", "Chiara", "Dmitri")]  # fmt: skip

    async def usage(prompt: str) -> tuple[int, int]:
        deltas = [d async for d in engine.complete(prompt, greedy)]
        assert deltas[-1].usage is not None
        return deltas[-1].usage.prompt_tokens, deltas[-1].usage.cached_tokens

    async def interleave() -> list[tuple[int, int]]:
        for story in stories:  # every conversation's first call
            await usage(story)
        return [await usage(story + " Then") for story in stories]  # and their second ones

    try:
        second_calls = asyncio.run(interleave())
    finally:
        asyncio.run(engine.aclose())
    for prompt_tokens, cached in second_calls:
        assert (prompt_tokens - cached) / prompt_tokens <= 0.5
    assert engine.slots.restored >= 3

"""relay-cloud under several users.

* ``concurrent_streams_ok``: of 50 streamed completions sent 10 ms apart, how
  many finished without an error; ``ttft_p95_ms`` their 95th-percentile time
  to first token (queueing included: the embedded engine answers its default
  number of requests at once, the rest first come first served);
  ``cloud_tokens_per_s`` the throughput; ``first_tokens_in_order``: the share
  of requests whose first token the client saw no later than the next
  request's (15 ms apart or less is a tie: requests answered in one batch).
  That the server serves in arrival order is tested
  (``tests/cloud/test_concurrency.py``); how close to that order a client sees
  the first tokens land on a busy machine is this figure.
* ``prefix_reuse_interleaved``: four answers make their first calls, then
  their second ones, interleaved; the worst second call's share of prompt
  tokens the engine had to evaluate again (it keeps several contexts).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path

import httpx

from cloud.engine import Generation
from cloud.llama_engine import LlamaEngine
from edge.app.cloud_process import free_port, running
from protocol.sampling import SamplingParams

__all__ = ["concurrent_streams", "interleaved_prefix_reuse"]

PROMPT = "The history of the harbour town, told in short chapters. Chapter"


async def _streams(base: str, count: int, tokens: int) -> list[tuple[bool, float, float, int]]:
    """(ok, time to first token, the moment of the first token, pieces) of each stream."""

    async def one(client: httpx.AsyncClient, index: int) -> tuple[bool, float, float, int]:
        await asyncio.sleep(0.01 * index)
        body = {"prompt": f"{PROMPT} {index}:", "max_tokens": tokens, "stream": True}
        started, first, pieces = time.monotonic(), 0.0, 0
        try:
            async with client.stream("POST", f"{base}/v1/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {") and '"text":"' in line:
                        first = first or time.monotonic() - started
                        pieces += 1
                return response.status_code == 200, first, started + first, pieces
        except httpx.HTTPError:
            return False, 0.0, 0.0, 0

    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        return await asyncio.gather(*(one(client, i) for i in range(count)))


def concurrent_streams(model: Path, count: int = 50, tokens: int = 8) -> dict[str, float]:
    """The figures of ``count`` concurrent streams against a relay-cloud process."""
    port = free_port()
    command = [sys.executable, "-m", "cloud", "serve", "--port", str(port), "--model", str(model),
               "--insecure-no-auth", "--log-level", "warning"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/health", quiet=True):
        started = time.monotonic()
        results = asyncio.run(_streams(base, count, tokens))
        elapsed = time.monotonic() - started
    firsts = sorted(first * 1000 for ok, first, _, _ in results if ok)
    moments = [moment for _, _, moment, _ in results]
    in_order = [a <= b + 0.015 for a, b in itertools.pairwise(moments)]
    return {
        "concurrent_streams_ok": sum(ok for ok, _, _, _ in results),
        "ttft_p95_ms": firsts[max(0, int(0.95 * len(firsts)) - 1)] if firsts else 0.0,
        "cloud_tokens_per_s": sum(pieces for *_, pieces in results) / elapsed,
        "first_tokens_in_order": sum(in_order) / max(1, len(in_order)),
    }


def interleaved_prefix_reuse(model: Path, answers: int = 4) -> float:
    """The worst second call's evaluated / sent prompt tokens, calls interleaved."""
    engine = LlamaEngine.load(model, n_ctx=4096, prompt_slots=4)
    greedy = Generation(SamplingParams(temperature=0.0), max_tokens=8)
    stories = [f"{PROMPT} {i}. " + "The boats came in and went out again. " * 25
               for i in range(answers)]  # fmt: skip

    async def second_calls() -> list[float]:
        async def usage(prompt: str) -> tuple[int, int]:
            last = [d async for d in engine.complete(prompt, greedy)][-1]
            assert last.usage is not None
            return last.usage.prompt_tokens, last.usage.cached_tokens

        for story in stories:
            await usage(story)
        shares = []
        for story in stories:
            sent, cached = await usage(story + " And then")
            shares.append((sent - cached) / sent)
        await engine.aclose()
        return shares

    return max(asyncio.run(second_calls()))


def upstream_prefix_reuse(slm: Path) -> float:
    """Second call / first call time through relay-cloud in front of llama-cpp-python's server.

    The relay's second call resends the first one's prompt, grown: an upstream that keeps
    its prompt cache answers it in a fraction of the time.
    """
    port = free_port()
    upstream = [sys.executable, "-m", "llama_cpp.server", "--model", str(slm), "--port",
                str(port), "--n_ctx", "4096", "--model_alias", "slm"]  # fmt: skip
    front_port = free_port()
    front = [sys.executable, "-m", "cloud", "serve", "--port", str(front_port), "--upstream-url",
             f"http://127.0.0.1:{port}/v1", "--upstream-model", "slm", "--insecure-no-auth",
             "--log-level", "warning"]  # fmt: skip
    story = "The boats came in and went out again, and the town watched them. " * 60
    with (
        running(upstream, f"http://127.0.0.1:{port}/v1/models", quiet=True),
        running(front, f"http://127.0.0.1:{front_port}/health", quiet=True),
    ):

        def seconds(prompt: str) -> float:
            started = time.perf_counter()
            body = {"prompt": prompt, "max_tokens": 4, "temperature": 0}
            url = f"http://127.0.0.1:{front_port}/v1/completions"
            httpx.post(url, json=body, timeout=300).raise_for_status()
            return time.perf_counter() - started

        seconds("Hello")
        first = seconds(story)
        return seconds(story + " And then the harbour") / first

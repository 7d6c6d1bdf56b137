"""relay-cloud's embedded engine beside llama.cpp's own ``llama-server``, same model and threads.

Each server runs as its own process on a 4096-token context with the same CPU
threads and KV cache (q8_0 keys and values with flash attention, relay-cloud's
default); the streams are OpenAI chat completions with each server's default
sampling. Figures, per server (``relay_`` or ``llamacpp_``):

* ``one_stream_tok_s``: one stream of ``max_tokens`` 64, tokens per second;
* ``eight_streams_tok_s``: eight such streams at once (8 sequences), all their
  tokens over the wall time; ``eight_vs_one_ratio``: the gain over one stream;
* ``fifty_ttft_p95_s`` and ``fifty_wall_s``: fifty streams of 32 tokens sent at
  once to a server of 50 sequences: the 95th-percentile time to the first
  token, and the time until the last one ends.

``serving_relay_vs_llamacpp_one_stream`` is relay's one stream over
llama-server's. ``llama-server`` is built once from the llama.cpp that the
installed llama-cpp-python vendors (:mod:`benchmarks.llama_server`); without a
compiler its figures are left out with a note. Run it alone with
``python -m benchmarks.serving``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks.llama_server import llama_server
from edge.app.cloud_process import free_port, running

__all__ = ["serving_figures"]

QUESTION = "Write a long story about a lighthouse keeper and the ships she guides."


@contextmanager
def _server(kind: str, model: Path, threads: int, parallel: int) -> Iterator[tuple[str, str]]:
    """``relay`` (relay-cloud) or ``llamacpp`` (llama-server) on a free port: its base URL and
    the name it serves the model under."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if kind == "relay":
        command = [sys.executable, "-m", "cloud", "serve", "--port", str(port), "--model",
                   str(model), "--insecure-no-auth", "--log-level", "warning", "--n-ctx", "4096",
                   "--n-threads", str(threads), "--parallel", str(parallel),
                   "--max-queue", "200"]  # fmt: skip
    else:
        binary = llama_server()
        assert isinstance(binary, Path)
        command = [str(binary), "-m", str(model), "--port", str(port), "-t", str(threads),
                   "-tb", str(threads), "-c", "4096", "-np", str(parallel), "--kv-unified",
                   "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "--log-disable"]  # fmt: skip
    with running(command, f"{base}/health", quiet=True, timeout_s=300):
        while httpx.get(f"{base}/health").status_code != 200:  # llama-server: 503 while loading
            time.sleep(0.2)
        yield base, httpx.get(f"{base}/v1/models").json()["data"][0]["id"]


async def _stream(
    client: httpx.AsyncClient, server: tuple[str, str], tokens: int
) -> tuple[float, int, float]:
    """(seconds to the first token, tokens, seconds to the end) of one chat stream."""
    base, model = server
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": tokens, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    started, first, pieces, counted = time.monotonic(), 0.0, 0, 0
    async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                first = first or time.monotonic() - started
                pieces += 1
            counted = (chunk.get("usage") or {}).get("completion_tokens", counted)
    return first, counted or pieces, time.monotonic() - started


async def _streams(
    server: tuple[str, str], count: int, tokens: int
) -> tuple[list[float], int, float]:
    """``count`` streams at once: their first-token times, all tokens, and the wall time."""
    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await _stream(client, server, 4)  # warm up: the first answer pays for lazy set-up
        started = time.monotonic()
        results = await asyncio.gather(*(_stream(client, server, tokens) for _ in range(count)))
    wall = time.monotonic() - started
    return [first for first, _, _ in results], sum(n for _, n, _ in results), wall


def _figures(kind: str, model: Path, threads: int, fifty: int) -> dict[str, float]:
    found: dict[str, float] = {}
    with _server(kind, model, threads, parallel=8) as server:
        _, one, wall = asyncio.run(_streams(server, 1, 64))
        found["one_stream_tok_s"] = one / wall
        _, eight, wall = asyncio.run(_streams(server, 8, 64))
        found["eight_streams_tok_s"] = eight / wall
    found["eight_vs_one_ratio"] = found["eight_streams_tok_s"] / found["one_stream_tok_s"]
    with _server(kind, model, threads, parallel=fifty) as server:
        firsts, _, wall = asyncio.run(_streams(server, fifty, 32))
    found["fifty_ttft_p95_s"] = statistics.quantiles(firsts, n=20)[-1]
    found["fifty_wall_s"] = wall
    return {f"{kind}_{name}": value for name, value in found.items()}


def serving_figures(model: Path, threads: int, fifty: int = 50) -> dict[str, object]:
    """Both servers' figures (llama-server's left out, with a note, when it can't be built)."""
    results: dict[str, object] = dict(_figures("relay", model, threads, fifty))
    server = llama_server()
    if isinstance(server, str):
        results["serving_note"] = server
        return results
    results |= _figures("llamacpp", model, threads, fifty)
    results["serving_relay_vs_llamacpp_one_stream"] = (
        results["relay_one_stream_tok_s"] / results["llamacpp_one_stream_tok_s"]  # type: ignore[operator]
    )
    return results


if __name__ == "__main__":
    from edge.llama import pull

    threads = int(os.environ.get("RELAYLLM_N_THREADS", "2"))
    fifty = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    figures = serving_figures(pull("cloud"), threads, fifty)
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")

"""relay-cloud's embedded engine beside llama.cpp's own ``llama-server``, same model and threads.

Each server runs as its own process on a 4096-token context with the same CPU
threads and KV cache (q8_0 keys and values with flash attention, relay-cloud's
default); the streams are OpenAI chat completions with each server's default
sampling. Figures, per server (``relay_`` or ``llamacpp_``):

* ``one_stream_tok_s``: one stream of ``max_tokens`` 64, tokens per second
  (the median of five);
* ``eight_streams_tok_s``: eight such streams at once (8 sequences), all their
  tokens over the wall time (the median of three); ``eight_vs_one_ratio``: the
  gain over one stream;
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
from contextlib import ExitStack, contextmanager
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
        served = base, httpx.get(f"{base}/v1/models").json()["data"][0]["id"]
        for attempt in range(5):  # llama-server may drop a request that comes right after start
            try:
                asyncio.run(_streams(served, 1, 1))
                break
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(1)
        yield served


async def _stream(
    client: httpx.AsyncClient, server: tuple[str, str], tokens: int
) -> tuple[float, int, float]:
    """(seconds to the first token, tokens, seconds to the end) of one chat stream."""
    base, model = server
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": tokens, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    started, first, pieces, counted = time.monotonic(), 0.0, 0, 0
    url = f"{base}/v1/chat/completions"
    # A connection each: llama-server may close a kept-alive one just as it is re-used.
    headers = {"Connection": "close"}
    async with client.stream("POST", url, json=body, headers=headers) as response:
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


def _tok_s(server: tuple[str, str], count: int) -> float:
    """Tokens per second of ``count`` streams of 64 tokens at once."""
    _, tokens, wall = asyncio.run(_streams(server, count, 64))
    return tokens / wall


def serving_figures(
    model: Path, threads: int, fifty: int = 50, rounds: int = 5
) -> dict[str, object]:
    """Both servers' figures (llama-server's left out, with a note, when it can't be built).

    Both servers run at once, idle while the other is measured, and take turns
    round by round, so that a machine that slows down for a while slows both:
    one stream is the median of ``rounds`` turns, eight streams of three.
    """
    results: dict[str, object] = {}
    kinds = ["relay", "llamacpp"]
    if isinstance(note := llama_server(), str):
        results["serving_note"] = note
        kinds = ["relay"]
    with ExitStack() as stack:
        servers = {kind: stack.enter_context(_server(kind, model, threads, 8)) for kind in kinds}
        one = _turns(servers, rounds, 1)
        eight = _turns(servers, 3, 8)
    with ExitStack() as stack:
        servers = {
            kind: stack.enter_context(_server(kind, model, threads, fifty)) for kind in kinds
        }
        runs = {kind: asyncio.run(_streams(server, fifty, 32)) for kind, server in servers.items()}
    for kind in kinds:
        firsts, _, wall = runs[kind]
        results |= {
            f"{kind}_one_stream_tok_s": one[kind],
            f"{kind}_eight_streams_tok_s": eight[kind],
            f"{kind}_eight_vs_one_ratio": eight[kind] / one[kind],
            f"{kind}_fifty_ttft_p95_s": statistics.quantiles(firsts, n=20)[-1],
            f"{kind}_fifty_wall_s": wall,
        }
    if "llamacpp" in kinds:
        results["serving_relay_vs_llamacpp_one_stream"] = one["relay"] / one["llamacpp"]
    return results


def _turns(servers: dict[str, tuple[str, str]], rounds: int, count: int) -> dict[str, float]:
    """The median tokens per second of ``count`` streams, the servers taking turns."""
    found: dict[str, list[float]] = {kind: [] for kind in servers}
    for _ in range(rounds):
        for kind, server in servers.items():
            found[kind].append(_tok_s(server, count))
    return {kind: statistics.median(values) for kind, values in found.items()}


if __name__ == "__main__":
    from edge.llama import pull

    threads = int(os.environ.get("RELAYLLM_N_THREADS", "2"))
    fifty = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    figures = serving_figures(pull("cloud"), threads, fifty)
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")

"""The edge's memory: a real ``relay run``-like process, measured from the inside.

``python -m benchmarks.memory [q8_0|q8_0/q4_0|f16]`` loads the SLM with the edge's
own settings (an 8192-token context by default), relays one offline answer and
prints, as JSON, its peak resident memory and the KV cache a conversation
costs; ``bare`` does the same with llama-cpp-python alone (same GGUF, context,
q8_0 cache, 100 greedy tokens), the floor the edge stands on. :func:`edge_memory`
runs it in a fresh process for the benchmarks. :func:`decode_ratio_deep` is what
4-bit values cost in speed once a context has filled.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from edge.llama import LlamaModel
from protocol.sampling import SamplingParams

__all__ = ["decode_ratio_deep", "edge_memory"]


def edge_memory(kv_cache: str) -> dict[str, float]:
    """``edge_rss_mb`` and ``edge_rss_per_conversation_mb`` of a fresh edge process."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.memory", kv_cache],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def decode_ratio_deep(slm: Path, kv_cache: str, depth: int, tokens: int) -> float:
    """Greedy decode speed with ``kv_cache`` / with ``q8_0``, after ``depth`` tokens of context."""
    rates = []
    for choice in (kv_cache, "q8_0"):
        model = LlamaModel(slm, n_ctx=depth + tokens + 1, kv_cache=choice)
        sampler = model.sampler(SamplingParams(temperature=0.0))
        try:
            model.sync(model.tokenize(" ".join(f"item {i}," for i in range(depth)))[:depth])
            start = time.perf_counter()
            for _ in range(tokens):
                model.eval([sampler.sample()])
            rates.append(tokens / (time.perf_counter() - start))
        finally:
            sampler.close()
            model.close()
    return rates[0] / rates[1]


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss``, not inherited
    from the process that started it)."""
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.is_file() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare() -> None:
    """llama-cpp-python alone: the same GGUF, context and cache, 100 greedy tokens."""
    from llama_cpp import Llama

    from edge.app.settings import EdgeSettings
    from edge.llama import resolve_model

    settings = EdgeSettings(offline=True)
    llama = Llama(model_path=str(resolve_model(settings.slm, default="slm")),
                  n_ctx=settings.n_ctx, n_threads=settings.n_threads, type_k=8, type_v=8,
                  flash_attn=True, verbose=False)  # fmt: skip
    llama.create_completion("Count to fifty.", max_tokens=100, temperature=0)
    print(json.dumps({"edge_rss_mb": peak_rss_mb(), "n_ctx": llama.n_ctx()}))


def main() -> None:
    if sys.argv[1] == "bare":
        bare()
        return
    from edge.app.runtime import build_relay
    from edge.app.settings import EdgeSettings

    settings = EdgeSettings(offline=True, kv_cache=sys.argv[1], max_tokens=100, temperature=0)
    relay = build_relay(settings)
    list(relay.answer(relay.prompt([{"role": "user", "content": "Count to fifty."}])))
    figures = {
        "edge_rss_mb": peak_rss_mb(),
        "edge_rss_per_conversation_mb": relay.model.kv_bytes() / 2**20,
        "n_ctx": relay.model.n_ctx,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

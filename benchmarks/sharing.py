"""The relay on a machine it shares.

``busy_machine_ratio``: the SLM's tokens per second (default threads) while one
other CPU-bound process runs / alone, in one run; ``busy_machine_ratio_all_threads``
the same with a thread on every logical CPU, as before threads followed the
machine's load. ``demo_call_ms_p50`` / ``demo_answer_s``: ``relay demo``'s calls
and whole answer with the SLM and relay-cloud's embedded engine on this one
machine, each with its default threads.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.clouds.fallback import OfflineCloud
from edge.core.loop import RelayLoop
from edge.core.policies import NeverPolicy
from edge.core.prompt import build_prompt
from edge.core.relay import RelayLimits
from edge.llama import LlamaChat, LlamaModel
from protocol.events import CallFinished, DoneEvent
from protocol.sampling import SamplingParams

__all__ = ["busy_machine_ratios", "demo_latency"]

STORY = [{"role": "user", "content": "Write a long story about a harbour town and its boats."}]


@contextmanager
def busy_process() -> Iterator[None]:
    """One other CPU-bound process on the machine while the block runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # let it settle on a core
        yield
    finally:
        spinner.kill()
        spinner.wait()


def tokens_per_s(model: LlamaModel, tokens: int) -> float:
    """SLM tokens per second of one greedy answer through the relay loop, no call."""
    loop = RelayLoop(model, OfflineCloud(), NeverPolicy(), sampling=SamplingParams(temperature=0),
                     limits=RelayLimits(max_tokens=tokens, repeat_guard=0))  # fmt: skip
    prompt = build_prompt(LlamaChat(model), STORY, n_ctx=model.n_ctx)
    model.truncate(0)
    model.sync(prompt.tokens)
    start = time.perf_counter()
    list(loop.run(prompt))
    elapsed = time.perf_counter() - start
    assert loop.record is not None
    return len(loop.record.tokens) / elapsed


def busy_machine_ratios(slm_path: Path, tokens: int, repeats: int) -> dict[str, float]:
    """Tokens per second beside a busy process / alone: default threads, and all CPUs."""
    results: dict[str, float] = {}
    for key, threads in (("busy_machine_ratio", None),
                         ("busy_machine_ratio_all_threads", os.cpu_count() or 1)):  # fmt: skip
        model = LlamaModel(slm_path, n_ctx=2048, n_threads=threads)
        try:
            tokens_per_s(model, 16)  # warm-up
            alone, busy = [], []
            for _ in range(repeats):
                alone.append(tokens_per_s(model, tokens))
                with busy_process():
                    busy.append(tokens_per_s(model, tokens))
            results[key] = statistics.median(busy) / statistics.median(alone)
            if threads is None:
                results["alone_tokens_per_s"] = statistics.median(alone)
                results["busy_tokens_per_s"] = statistics.median(busy)
        finally:
            model.close()
    return results


def demo_latency(slm_path: Path, cloud_path: Path, repeats: int) -> dict[str, float]:
    """``relay demo``'s answer with both models on this machine: per call and in all."""
    from edge.app.cli.answers import DEMO_QUESTION
    from edge.app.cloud_process import local_cloud
    from edge.app.runtime import build_relay
    from edge.app.settings import EdgeSettings

    calls, answers = [], []
    with tempfile.TemporaryDirectory() as tmp, local_cloud(cloud_path) as url:
        settings = EdgeSettings(slm=str(slm_path), cloud_url=url, policy="entropy", seed=7,
                                max_tokens=160, ledger_path=Path(tmp) / "ledger.sqlite3",
                                audit_path=Path(tmp) / "audit.jsonl")  # fmt: skip
        relay = build_relay(settings)
        prompt = relay.prompt([{"role": "user", "content": DEMO_QUESTION}])
        for _ in range(repeats + 1):
            events = list(relay.answer(prompt))
            calls += [e.latency_ms for e in events if isinstance(e, CallFinished)]
            answers += [e.wall_s for e in events if isinstance(e, DoneEvent)]
        relay.model.close()
    return {"demo_call_ms_p50": statistics.median(calls),
            "demo_answer_s": statistics.median(answers[1:])}  # fmt: skip

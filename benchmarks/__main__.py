"""relayllm benchmarks: ``python -m benchmarks [--json PATH] [--quick]``.

Every figure is a ratio or a per-call time measured in this one run, so the
machine's speed cancels out:

* ``idle_ratio``: plain llama-cpp-python generation time / relay loop time for
  the same greedy tokens with no call (>= 0.97 means the loop costs < 3 %).
* ``splice_ratio_max``: the relay's append of 32 cloud tokens / a bare
  ``Llama.eval`` of the same tokens at the same context, worst of 256/1024/3072.
* ``handoff_overhead_ms_p50``: client-side time per call (request, SSE parsing,
  ledger, audit, breaker) against a loopback server that answers instantly.
* ``handoff_overhead_ms_p50_traced``: the same with OpenTelemetry traces on (a span per
  call and its ``traceparent``; the spans are dropped, not sent).
* ``metrics_overhead_ms_per_call``: what ``relay serve``'s Prometheus metrics add to
  an answer, per cloud call (the edge counts each event as it is sent).
* ``cloud_prefix_reuse_ratio``: prompt tokens the embedded cloud engine
  evaluated / tokens it was sent, on the second call of an answer.
* ``edge_rss_mb``: peak resident memory of a fresh edge process (8192-token
  context, q8_0 KV cache) that relays one answer; ``edge_rss_per_conversation_mb``:
  the KV cache one conversation costs; ``edge_rss_mb_f16_kv`` for comparison;
  ``edge_rss_bare_mb``: llama-cpp-python alone with the same GGUF, context and cache
  (``edge_rss_vs_bare_ratio``: the edge's cost over that floor); ``edge_rss_mb_q4_v``
  with ``kv_cache = "q8_0/q4_0"`` (4-bit values) and ``q4_v_decode_ratio``: its decode
  speed / q8_0's after 2048 tokens of context.
* ``resume_latency_ms_p50`` / ``resume_vs_token_ratio``: from the cloud's last
  byte to the SLM's next token, alone and over one SLM token time
  (:mod:`benchmarks.resume`); ``resume_vs_token_ratio_token_stream`` with the answer
  streamed a token per event instead of a word.
* ``concurrent_streams_ok``, ``ttft_p95_ms``, ``cloud_tokens_per_s``,
  ``first_tokens_in_order``, ``prefix_reuse_interleaved``,
  ``upstream_prefix_reuse_time_ratio``: relay-cloud under several users, and in
  front of llama-cpp-python's server
  (:mod:`benchmarks.concurrency`).
* ``relay_one_stream_tok_s``, ``relay_eight_vs_one_ratio``, ``relay_fifty_ttft_p95_s``,
  ``serving_relay_vs_llamacpp_one_stream`` and the rest: relay-cloud's embedded engine
  beside llama.cpp's own ``llama-server`` (:mod:`benchmarks.serving`).
* ``cli_start_ms``, ``first_token_ms``, ``first_token_vs_bare_ratio``: start-up
  of ``relay --help`` and ``relay run`` against a bare llama-cpp-python script
  (:mod:`benchmarks.startup`).
* ``busy_machine_ratio``: SLM tokens per second beside one other CPU-bound process /
  alone, default threads (``busy_machine_ratio_all_threads``: a thread per CPU);
  ``demo_call_ms_p50``, ``demo_answer_s``: ``relay demo`` with both models on this
  machine (:mod:`benchmarks.sharing`).
* ``rollout_vs_generate_ratio``: training rollouts through the relay loop on
  transformers / ``generate``, tokens per second, batch of 8 (needs the
  ``train`` extra; see :mod:`benchmarks.rollout`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.concurrency import (
    concurrent_streams,
    interleaved_prefix_reuse,
    upstream_prefix_reuse,
)
from benchmarks.memory import decode_ratio_deep, edge_memory
from benchmarks.resume import resume_latency
from benchmarks.servers import serve_in_process, serve_in_thread
from benchmarks.serving import serving_figures
from benchmarks.sharing import busy_machine_ratios, demo_latency
from benchmarks.startup import startup
from cloud.engine import Delta, Generation
from cloud.llama_engine import LlamaEngine
from edge.app.runtime import build_cloud
from edge.app.settings import EdgeSettings
from edge.clouds.fallback import OfflineCloud
from edge.core.loop import RelayLoop
from edge.core.policies import LearnedPolicy, NeverPolicy
from edge.core.prompt import RelayPrompt, build_prompt
from edge.core.relay import RelayLimits
from edge.core.splice import Splice
from edge.llama import LlamaChat, LlamaModel, pull
from protocol.sampling import SamplingParams
from protocol.wire import Usage

GREEDY = SamplingParams(temperature=0.0)
COUNT = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]


def prompt_of(model: LlamaModel, messages: list[dict[str, str]]) -> RelayPrompt:
    return build_prompt(LlamaChat(model), messages, n_ctx=model.n_ctx)


def idle_ratio(model: LlamaModel, tokens: int, repeats: int) -> float:
    """Plain llama-cpp-python time / relay loop time for the same tokens, no call."""
    loop = RelayLoop(model, OfflineCloud(), NeverPolicy(), sampling=GREEDY,
                     limits=RelayLimits(max_tokens=tokens))  # fmt: skip
    prompt = prompt_of(model, COUNT)
    plain_t, relay_t = [], []
    for _ in range(repeats):
        model.truncate(0)
        start = time.perf_counter()
        list(loop.run(prompt))
        relay_t.append(time.perf_counter() - start)
        assert loop.record is not None
        produced = len(loop.record.tokens)
        model.truncate(0)
        start = time.perf_counter()
        model.llama.create_completion(list(prompt.tokens), max_tokens=produced, temperature=0.0)
        plain_t.append(time.perf_counter() - start)
    return statistics.median(plain_t) / statistics.median(relay_t)


def splice_ratios(model: LlamaModel, contexts: tuple[int, ...], repeats: int) -> dict[int, float]:
    """Relay splice of 32 cloud tokens / bare eval of the same tokens, per context length.

    The relay's splice is what a call does with the cloud's text: a :class:`Splice`
    (room check and tokenization) and an append to the model's context.
    """
    text = model.detokenize(model.tokenize(" the quick brown fox jumps" * 12)[:32]).decode()
    tokens = model.tokenize(text)
    ratios = {}
    for context in contexts:
        words = " ".join(f"item {i}" for i in range(context))
        user = model.detokenize(model.tokenize(words)[: context - 40]).decode()
        model.sync(prompt_of(model, [{"role": "user", "content": user}]).tokens)
        base = model.n_tokens
        relay_t, bare_t = [], []
        for _ in range(repeats):
            model.truncate(base)
            start = time.perf_counter()
            splice = Splice(model, room=4096)
            splice.add(text)
            splice.advance()
            model.eval(splice.final())
            relay_t.append(time.perf_counter() - start)
            model.truncate(base)
            start = time.perf_counter()
            model.llama.eval(tokens)
            bare_t.append(time.perf_counter() - start)
        ratios[base] = statistics.median(relay_t) / statistics.median(bare_t)
    return ratios


def handoff_overhead_ms(calls: int, data_dir: Path) -> tuple[float, float]:
    """Median client CPU time and wall time (ms) of one call against an instant loopback server.

    CPU time of this process is relayllm's own work; wall time adds the loopback
    round trips and the server's (instant, model-free) answer.
    """
    from edge.core.cloud import CloudRequest

    with serve_in_process(pieces=16) as url:
        settings = EdgeSettings(
            cloud_url=url,
            cloud_model="instant",
            ledger_path=data_dir / "ledger.sqlite3",
            audit_path=data_dir / "audit.jsonl",
        )
        cloud = build_cloud(settings)
        cpu, wall = [], []
        for i in range(calls + 5):
            request = CloudRequest(call_id=str(i), answer_id="a", prompt="x " * 500,
                                   messages=[], max_tokens=16, context_tokens=500)  # fmt: skip
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            items = list(cloud.stream(request))
            cpu.append((time.process_time() - cpu_start) * 1000)
            wall.append((time.perf_counter() - wall_start) * 1000)
            assert items[-1].outcome == "ok", items[-1]  # type: ignore[union-attr]
    return statistics.median(cpu[5:]), statistics.median(wall[5:])


def metrics_overhead_ms(repeats: int) -> float:
    """Median time relay serve's metrics add per cloud call: an answer of four calls (16 cloud
    and 25 SLM text events each) through :meth:`EdgeMetrics.watch` less a plain pass-through."""
    import asyncio

    from edge.app.metrics import EdgeMetrics
    from protocol.events import CallFinished, CallStarted, DoneEvent, RelayEvent, TextEvent

    events: list[RelayEvent] = []
    for call in range(4):
        events += [TextEvent(source="slm", text=" word", n_tokens=1)] * 25
        events.append(CallStarted(call_id=str(call), requested=16, granted=16))
        events += [TextEvent(source="llm", text=" word", n_tokens=1)] * 16
        events.append(CallFinished(call_id=str(call), outcome="ok", tokens=16, latency_ms=80.0,
                                   cloud="cloud"))  # fmt: skip
    events.append(DoneEvent(finish_reason="stop", slm_tokens=100, llm_tokens=64, calls=4))

    async def source() -> AsyncIterator[RelayEvent]:
        for event in events:
            yield event

    async def timed(watched: bool) -> float:
        metrics = EdgeMetrics()
        start = time.perf_counter()
        async for _ in metrics.watch(source()) if watched else source():
            pass
        return time.perf_counter() - start

    plain = [asyncio.run(timed(False)) for _ in range(repeats)]
    watched = [asyncio.run(timed(True)) for _ in range(repeats)]
    return max(0.0, statistics.median(watched) - statistics.median(plain)) * 1000 / 4


def traced_handoff_overhead_ms(calls: int, data_dir: Path) -> float:
    """:func:`handoff_overhead_ms` (CPU) with traces on: every call's span is made, filled and
    handed to an exporter that drops it, and its ``traceparent`` is sent."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(Dropped()))
    os.environ["OTEL_TRACES_EXPORTER"] = "otlp"  # on; the provider above is the one used
    try:
        return handoff_overhead_ms(calls, data_dir)[0]
    finally:
        del os.environ["OTEL_TRACES_EXPORTER"]


class UsageLog:
    """An engine wrapper that keeps the usage of every request it finished."""

    def __init__(self, engine: LlamaEngine) -> None:
        self.engine = engine
        self.model_id = engine.model_id
        self.usages: list[Usage] = []

    async def start(self) -> None:
        await self.engine.start()

    async def aclose(self) -> None:
        await self.engine.aclose()

    async def complete(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        async for delta in self.engine.complete(prompt, generation):
            if delta.usage is not None:
                self.usages.append(delta.usage)
            yield delta


def cloud_prefix_reuse(slm: LlamaModel, cloud_model: Path, data_dir: Path) -> float:
    """Evaluated / sent prompt tokens of the cloud engine on an answer's second call."""
    from cloud.app import create_app
    from cloud.settings import CloudSettings

    engine = UsageLog(LlamaEngine.load(cloud_model, n_ctx=4096))
    app = create_app(CloudSettings(insecure_no_auth=True), engine=engine)  # type: ignore[arg-type]
    with serve_in_thread(app) as url:
        settings = EdgeSettings(
            cloud_url=url,
            cloud_temperature=0.0,
            ledger_path=data_dir / "l2.sqlite3",
            audit_path=data_dir / "a2.jsonl",
        )
        loop = RelayLoop(slm, build_cloud(settings), LearnedPolicy(), sampling=GREEDY)
        prefix = "First, <call>12</call> and then, <call>12</call>"
        list(loop.run(prompt_of(slm, [{"role": "user", "content": "Tell me about rivers."}]),
                      prefix=prefix))  # fmt: skip
    second = engine.usages[1]
    return (second.prompt_tokens - second.cached_tokens) / second.prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--quick", action="store_true", help="Fewer repeats (a smoke run).")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    console = Console()
    slm_path, cloud_path = pull("slm"), pull("cloud")
    threads = int(os.environ.get("RELAYLLM_N_THREADS", os.cpu_count() or 1))
    slm = LlamaModel(slm_path, n_ctx=4096, n_threads=threads)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp, console.status("benchmarking") as status:
        status.update("idle ratio")
        results["idle_ratio"] = idle_ratio(slm, 64 if args.quick else 200, repeats)
        status.update("splice ratio")
        ratios = splice_ratios(slm, (256, 1024, 3072), repeats * 2)
        results["splice_ratios"] = {str(k): v for k, v in ratios.items()}
        results["splice_ratio_max"] = max(ratios.values())
        status.update("start-up")
        question = [{"role": "user", "content": "Hi"}]
        prompt = LlamaChat(slm).render(question)
        results |= startup(slm_path, prompt, 3 if args.quick else 7)
        status.update("edge memory")
        results |= {key: value for key, value in edge_memory("q8_0").items() if key != "n_ctx"}
        results["edge_rss_mb_f16_kv"] = edge_memory("f16")["edge_rss_mb"]
        results["edge_rss_bare_mb"] = edge_memory("bare")["edge_rss_mb"]
        results["edge_rss_vs_bare_ratio"] = results["edge_rss_mb"] / results["edge_rss_bare_mb"]
        results["edge_rss_mb_q4_v"] = edge_memory("q8_0/q4_0")["edge_rss_mb"]
        results["q4_v_decode_ratio"] = decode_ratio_deep(slm_path, "q8_0/q4_0", 2048, 64)
        status.update("resume after a call")
        resume_ms, resume_ratio = resume_latency(slm, 3 if args.quick else 7)
        results["resume_latency_ms_p50"] = resume_ms
        results["resume_vs_token_ratio"] = resume_ratio
        results["resume_vs_token_ratio_token_stream"] = resume_latency(
            slm, 3 if args.quick else 7, per_token=True
        )[1]
        status.update("handoff overhead")
        cpu, wall = handoff_overhead_ms(20 if args.quick else 100, Path(tmp))
        results["handoff_overhead_ms_p50"] = cpu
        results["handoff_wall_ms_p50"] = wall
        if importlib.util.find_spec("opentelemetry.sdk") is not None:
            results["handoff_overhead_ms_p50_traced"] = traced_handoff_overhead_ms(
                20 if args.quick else 100, Path(tmp)
            )
        results["metrics_overhead_ms_per_call"] = metrics_overhead_ms(20 if args.quick else 200)
        status.update("cloud prefix reuse")
        results["cloud_prefix_reuse_ratio"] = cloud_prefix_reuse(slm, cloud_path, Path(tmp))
        status.update("several users")
        results |= concurrent_streams(cloud_path, count=20 if args.quick else 50)
        results["prefix_reuse_interleaved"] = interleaved_prefix_reuse(cloud_path)
        results["upstream_prefix_reuse_time_ratio"] = upstream_prefix_reuse(slm_path)
        status.update("serving beside llama-server")
        results |= serving_figures(cloud_path, threads, fifty=20 if args.quick else 50)
        status.update("a busy machine")
        results |= busy_machine_ratios(slm_path, 120 if args.quick else 300, repeats)
        results |= demo_latency(slm_path, cloud_path, 2 if args.quick else 5)
        if importlib.util.find_spec("torch") is not None:
            from benchmarks.rollout import rollout_vs_generate_ratio

            status.update("training rollouts")
            ratio, relay_rate, generate_rate = rollout_vs_generate_ratio(
                rows=8, tokens=32 if args.quick else 128
            )
            results["rollout_vs_generate_ratio"] = ratio
            results["rollout_tokens_per_s"] = relay_rate
            results["generate_tokens_per_s"] = generate_rate
    results["machine"] = f"{platform.machine()} {os.cpu_count()} cpus, {threads} threads"
    results["models"] = {"slm": slm_path.name, "cloud": cloud_path.name}
    show(console, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


TARGETS = {
    "idle_ratio": (">=", 0.97),
    "splice_ratio_max": ("<=", 1.1),
    "handoff_overhead_ms_p50": ("<", 5.0),
    "cloud_prefix_reuse_ratio": ("<=", 0.5),
    "rollout_vs_generate_ratio": (">=", 0.8),
    "resume_vs_token_ratio": ("<=", 1.5),
    "edge_rss_mb": ("<=", 250.0),
    "edge_rss_vs_bare_ratio": ("<=", 1.02),
    "first_token_vs_bare_ratio": ("<=", 1.2),
    "prefix_reuse_interleaved": ("<=", 0.5),
    "busy_machine_ratio": (">=", 0.4),
    "serving_relay_vs_llamacpp_one_stream": (">=", 0.95),
    "relay_eight_vs_one_ratio": (">=", 2.0),
    "relay_fifty_ttft_p95_s": ("<=", 2.5),
}


def show(console: Console, results: dict[str, object]) -> None:
    table = Table("figure", "value", "target", "met", title=f"relayllm ({results['machine']})")
    extra = (
        "handoff_wall_ms_p50", "handoff_overhead_ms_p50_traced", "metrics_overhead_ms_per_call",
        "resume_latency_ms_p50",
        "resume_vs_token_ratio_token_stream",
        "edge_rss_per_conversation_mb",
        "edge_rss_mb_f16_kv", "edge_rss_bare_mb",
        "edge_rss_mb_q4_v", "q4_v_decode_ratio",
        "rollout_tokens_per_s", "cli_start_ms", "first_token_ms",
        "concurrent_streams_ok", "ttft_p95_ms", "cloud_tokens_per_s",
        "first_tokens_in_order",
        "upstream_prefix_reuse_time_ratio", "busy_machine_ratio_all_threads",
        "alone_tokens_per_s", "busy_tokens_per_s", "demo_call_ms_p50", "demo_answer_s",
        *(f"{server}_{name}" for server in ("relay", "llamacpp") for name in (
            "one_stream_tok_s", "eight_streams_tok_s", "eight_vs_one_ratio", "fifty_ttft_p95_s",
            "fifty_wall_s")),
    )  # fmt: skip
    for name in (*TARGETS, *extra):
        if name not in results:
            continue
        value = float(results[name])  # type: ignore[arg-type]
        op, target = TARGETS.get(name, ("", None))
        met = "" if target is None else "yes" if _meets(value, op, target) else "NO"
        table.add_row(name, f"{value:.3f}", f"{op} {target}" if target else "", met)
    console.print(table)
    if "serving_note" in results:
        console.print(f"serving: {results['serving_note']}")


def _meets(value: float, op: str, target: float) -> bool:
    return {">=": value >= target, "<=": value <= target, "<": value < target}[op]


if __name__ == "__main__":
    sys.exit(main())

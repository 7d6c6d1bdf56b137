"""The benchmark functions at reduced size: they measure what they claim (no timing targets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.__main__ import (
    cloud_prefix_reuse,
    handoff_overhead_ms,
    idle_ratio,
    metrics_overhead_ms,
    splice_ratios,
    traced_handoff_overhead_ms,
)
from benchmarks.memory import decode_ratio_deep, edge_memory
from benchmarks.resume import resume_latency
from benchmarks.rollout import rollout_vs_generate_ratio
from benchmarks.sharing import busy_machine_ratios, demo_latency
from edge.llama import LlamaModel


@pytest.fixture(scope="module")
def slm(slm_path: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(slm_path, n_ctx=1024, n_threads=2)
    yield model
    model.close()


@pytest.mark.slow
def test_benchmarks_run_at_reduced_size(
    slm: LlamaModel, slm_path: Path, cloud_model_path: Path, tmp_path: Path
) -> None:
    # Each ratio compares the same work done two ways, so it is near 1 on any machine.
    assert 0.3 < idle_ratio(slm, tokens=8, repeats=1) < 3
    (ratio,) = splice_ratios(slm, (256,), repeats=1).values()
    assert 0.3 < ratio < 3
    assert 0 <= metrics_overhead_ms(3) < 50  # a number per call, not a stall
    assert traced_handoff_overhead_ms(3, tmp_path) > 0
    cpu, wall = handoff_overhead_ms(3, tmp_path)
    assert 0 < cpu <= wall * 2  # one process's CPU time cannot exceed two cores' wall time
    # The second call re-sends the first one's context: the engine re-evaluates little of it.
    assert 0 < cloud_prefix_reuse(slm, cloud_model_path, tmp_path) < 0.5
    resume_ms, resume_ratio = resume_latency(slm, answers=1, gap_s=0.0)
    assert resume_ms > 0
    assert resume_ratio == pytest.approx(resume_ratio)  # a number, not NaN
    assert resume_latency(slm, answers=1, gap_s=0.0, per_token=True)[0] > 0
    q8, f16 = edge_memory("q8_0"), edge_memory("f16")
    assert q8["edge_rss_per_conversation_mb"] < f16["edge_rss_per_conversation_mb"]
    assert q8["edge_rss_mb"] < f16["edge_rss_mb"]  # the smaller KV cache is real memory saved
    q4_v = edge_memory("q8_0/q4_0")
    assert q4_v["edge_rss_per_conversation_mb"] < q8["edge_rss_per_conversation_mb"]
    assert q4_v["edge_rss_mb"] < q8["edge_rss_mb"]
    assert 0.3 < decode_ratio_deep(slm_path, "q8_0/q4_0", depth=256, tokens=8) < 3
    bare = edge_memory("bare")
    assert bare["n_ctx"] == q8["n_ctx"]  # the floor is measured at the same context
    assert 0.5 < q8["edge_rss_mb"] / bare["edge_rss_mb"] < 2
    ratio, relay_rate, generate_rate = rollout_vs_generate_ratio(rows=2, tokens=8)
    assert 0.3 < ratio < 3
    assert ratio == pytest.approx(relay_rate / generate_rate)
    shared = busy_machine_ratios(slm_path, tokens=16, repeats=1)
    assert shared["busy_machine_ratio"] == pytest.approx(
        shared["busy_tokens_per_s"] / shared["alone_tokens_per_s"]
    )
    assert 0 < shared["busy_machine_ratio_all_threads"] < 3
    demo = demo_latency(slm_path, cloud_model_path, repeats=1)
    assert demo["demo_call_ms_p50"] > 0  # the demo's answer calls its local cloud
    assert demo["demo_answer_s"] * 1000 > demo["demo_call_ms_p50"]

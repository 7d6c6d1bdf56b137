"""The benchmark functions at reduced size: they run and give sane figures (no timing targets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.__main__ import cloud_prefix_reuse, handoff_overhead_ms, idle_ratio, splice_ratios
from edge.llama_model import LlamaModel


@pytest.fixture(scope="module")
def slm(slm_path: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(slm_path, n_ctx=1024, n_threads=2)
    yield model
    model.close()


@pytest.mark.slow
def test_benchmarks_run_at_reduced_size(
    slm: LlamaModel, cloud_model_path: Path, tmp_path: Path
) -> None:
    assert idle_ratio(slm, tokens=8, repeats=1) > 0
    (ratio,) = splice_ratios(slm, (256,), repeats=1).values()
    assert ratio > 0
    cpu, wall = handoff_overhead_ms(3, tmp_path)
    assert cpu > 0
    assert wall > 0
    assert 0 <= cloud_prefix_reuse(slm, cloud_model_path, tmp_path) < 1

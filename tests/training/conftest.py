"""Training fixtures: the bundled SLM in transformers, and the same weights as an f16 GGUF."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from edge.clouds.fallback import FallbackCloud
from edge.clouds.http import HttpCloud
from edge.llama import LlamaModel
from tests.conftest import relay_cloud
from training.export import convert
from training.metrics import MetricsLog
from training.models import LoadedSLM, load_slm
from training.problems import Problem, generate, write_problems

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def hf_slm(slm_path: Path) -> LoadedSLM:
    """The bundled SLM read by transformers (dequantized, rebuilt, trainable)."""
    return load_slm(slm_path)


@pytest.fixture
def trainable_slm(hf_slm: LoadedSLM) -> LoadedSLM:
    """A copy of the SLM a test may train, leaving the shared one as it was."""
    model = copy.deepcopy(hf_slm.model)
    return LoadedSLM(model, hf_slm.tokenizer, hf_slm.chat_template, hf_slm.source)


@pytest.fixture(scope="session")
def f16_pair(hf_slm: LoadedSLM, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A transformers model and an f16 GGUF of exactly its weights (llama.cpp's converter)."""
    out = tmp_path_factory.mktemp("f16")
    half = copy.deepcopy(hf_slm.model).half()
    half.save_pretrained(out / "hf")
    hf_slm.tokenizer.save_pretrained(out / "hf")
    # The transformers side computes in float32 with the weights the f16 file holds.
    return half.float(), convert(out / "hf", out / "slm-f16.gguf")


@pytest.fixture(scope="module")
def f16_edge(f16_pair: tuple[Any, Path]) -> Iterator[LlamaModel]:
    model = LlamaModel(f16_pair[1], n_ctx=2048, n_threads=2, kv_cache="f16")
    yield model
    model.close()


@pytest.fixture(scope="session")
def expert_problems(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Problem], Path]:
    """A few generated problems, and the file the expert engine reads them from."""
    problems = generate(12, seed=21, levels=[1, 2])
    return problems, write_problems(problems, tmp_path_factory.mktemp("data") / "expert.jsonl")


@pytest.fixture(scope="session")
def expert_url(expert_problems: tuple[list[Problem], Path]) -> Iterator[str]:
    """relay-cloud's expert engine on loopback, knowing ``expert_problems``."""
    args = ("--engine", "expert", "--problems", str(expert_problems[1]), "--insecure-no-auth")
    with relay_cloud(*args) as base:
        yield f"{base}/v1"


@pytest.fixture
def expert_cloud(expert_url: str) -> FallbackCloud:
    return FallbackCloud(HttpCloud(expert_url, temperature=0.0, retries=0))


@dataclass(frozen=True)
class ShortRun:
    """What a short training run takes: a copy of the SLM it may train, the expert's
    problems and cloud, and a folder for its output with the metrics log in it."""

    slm: LoadedSLM
    problems: list[Problem]
    cloud: FallbackCloud
    folder: Path
    metrics: MetricsLog


@pytest.fixture
def short_run(
    trainable_slm: LoadedSLM,
    expert_problems: tuple[list[Problem], Path],
    expert_cloud: FallbackCloud,
    tmp_path: Path,
) -> ShortRun:
    metrics = MetricsLog(tmp_path / "metrics.jsonl")
    return ShortRun(trainable_slm, expert_problems[0], expert_cloud, tmp_path, metrics)


@pytest.fixture(scope="module")
def slm(slm_path: Path) -> Iterator[LlamaModel]:
    """The bundled SLM in the edge runtime (llama.cpp)."""
    model = LlamaModel(slm_path, n_ctx=2048, n_threads=2)
    yield model
    model.close()

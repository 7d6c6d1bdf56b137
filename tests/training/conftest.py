"""Training fixtures: the bundled SLM in transformers, and the same weights as an f16 GGUF."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from edge.llama import LlamaModel
from training.export import convert
from training.models import LoadedSLM, load_slm

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def hf_slm(slm_path: Path) -> LoadedSLM:
    """The bundled SLM read by transformers (dequantized, rebuilt, trainable)."""
    return load_slm(slm_path)


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
    model = LlamaModel(f16_pair[1], n_ctx=2048, n_threads=2)
    yield model
    model.close()

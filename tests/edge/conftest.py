"""Edge fixtures: the real bundled SLM, and a recorder that watches what it evaluates."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from edge.llama_model import LlamaModel


class EvalRecorder:
    """The real model, with every ``eval``/``sync`` call written down."""

    def __init__(self, model: LlamaModel) -> None:
        self._model = model
        self.evals: list[list[int]] = []
        self.synced: list[tuple[int, int]] = []  # (tokens asked, tokens re-used)

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)

    @property
    def n_ctx(self) -> int:
        return self._model.n_ctx

    @property
    def metadata(self) -> dict[str, str]:
        return self._model.metadata

    def eval(self, tokens: Sequence[int]) -> None:
        self.evals.append(list(tokens))
        self._model.eval(tokens)

    def sync(self, tokens: Sequence[int]) -> int:
        reused = self._model.sync(tokens)
        self.synced.append((len(tokens), reused))
        return reused


@pytest.fixture(scope="module")
def slm(slm_path: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(slm_path, n_ctx=2048, n_threads=2)
    yield model
    model.close()


@pytest.fixture
def recorder(slm: LlamaModel) -> EvalRecorder:
    return EvalRecorder(slm)

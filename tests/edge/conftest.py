"""Edge fixtures: the real bundled SLM, a spy that watches what it evaluates, prompts, and
how a test reads an answer's events."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from edge.core.prompt import RelayPrompt, build_prompt
from edge.core.record import AnswerRecord
from edge.llama import LlamaChat, LlamaModel
from protocol.calls import strip_calls
from protocol.events import RelayEvent, TextEvent
from protocol.sampling import SamplingParams

T = TypeVar("T")

Events = list[RelayEvent]
"""One answer's events, in order."""


class ForcedSampler:
    """Draws ``forced`` tokens first, then whatever the real sampler draws."""

    def __init__(self, forced: list[int], real: object) -> None:
        self.forced = forced
        self.real = real

    def sample(self) -> int:
        return self.forced.pop(0) if self.forced else self.real.sample()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.real.close()  # type: ignore[attr-defined]


class ModelSpy:
    """The real model, with every context edit written down.

    ``force`` makes the next answer start with the given tokens as if the model
    had sampled them: the one way to get a token sequence the bundled SLM does
    not write on its own (a ``>.`` right after ``</call``, half an emoji).
    """

    def __init__(self, model: LlamaModel) -> None:
        self._model = model
        self.evals: list[list[int]] = []
        self.rewinds: list[int] = []
        self.synced: list[tuple[int, int]] = []  # (tokens asked, tokens re-used)
        self.forced: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)

    @property
    def n_ctx(self) -> int:
        return self._model.n_ctx

    def force(self, tokens: Sequence[int]) -> ModelSpy:
        self.forced = list(tokens)
        return self

    def eval(self, tokens: Sequence[int]) -> None:
        self.evals.append(list(tokens))
        self._model.eval(tokens)

    def rewind(self, n: int) -> None:
        self.rewinds.append(n)
        self._model.rewind(n)

    def sync(self, tokens: Sequence[int], *, exact: bool = False) -> int:
        reused = self._model.sync(tokens, exact=exact)
        self.synced.append((len(tokens), reused))
        return reused

    def sampler(self, params: SamplingParams) -> ForcedSampler:
        forced, self.forced = self.forced, []
        return ForcedSampler(forced, self._model.sampler(params))


def prompt_for(model: object, messages: Sequence[Mapping[str, str]]) -> RelayPrompt:
    """The relay prompt of ``messages`` for a llama.cpp model (or a spy around one)."""
    return build_prompt(LlamaChat(model), messages, n_ctx=model.n_ctx)  # type: ignore[arg-type, attr-defined]


def of_type(events: Sequence[RelayEvent], kind: type[T]) -> list[T]:
    """The events of one kind, in order."""
    return [e for e in events if isinstance(e, kind)]


def shown_text(events: Sequence[RelayEvent], source: str | None = None) -> str:
    """The text the events showed: all of it, or what one source (``"slm"``, ``"llm"``) wrote."""
    return "".join(e.text for e in of_type(events, TextEvent) if source in (None, e.source))


def assert_consistent(model: object, record: AnswerRecord, events: Events) -> None:
    """What the SLM's context holds is the answer text, and the user saw it without commands."""
    tokens = model.tokens  # type: ignore[attr-defined]
    assert tokens[len(tokens) - len(record.tokens) :] == record.tokens
    assert len(tokens) == record.prompt_tokens + len(record.tokens)
    detokenized = model.detokenize(record.tokens).decode("utf-8", "replace")  # type: ignore[attr-defined]
    assert detokenized == record.text
    assert shown_text(events) == record.shown
    assert strip_calls(record.text) == record.shown
    assert len(record.mask) == len(record.tokens)
    cloud_text = [e for e in of_type(events, TextEvent) if e.source == "llm"]
    # Cloud text says the tokens it added as tokenized so far: exact for pieces that end on a
    # token, more while pieces split words the whole text tokenizes into fewer tokens.
    assert sum(e.n_tokens for e in cloud_text) >= record.mask.count(0)


@pytest.fixture(scope="module")
def slm(slm_path: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(slm_path, n_ctx=2048, n_threads=2)
    yield model
    model.close()


@pytest.fixture
def spy(slm: LlamaModel) -> ModelSpy:
    return ModelSpy(slm)

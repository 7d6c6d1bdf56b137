"""The expert engine: a clearly labelled stand-in for a strong cloud model on known problems.

The small cloud models that run offline cannot solve arithmetic word
problems, so on a CPU there would be no reason for the SLM to call. This
engine knows the worked solution of every problem in its ``--problems`` file
(see :mod:`cloud.expert_problems`) and nothing else: it finds the problem
whose question is in the prompt and continues the answer written after it.
It exists to show the learning signal on a CPU; real models are the default
everywhere else. A prompt that holds no known question is a 400. Tokens are
counted as words with their leading whitespace; usage counts what was sent.

``faithful`` (the default) continues like a strong model would: with the
*next* steps of the worked solution, in order, then ``The answer is
\\boxed{..}.``, for at most ``max_tokens`` tokens (``length`` when cut,
``stop`` only once the final line is sent whole). Where to start is decided
by numbers, not words, in the answer written so far (the prompt after the
question, call tags dropped):

* the steps are scanned from the first; a step is done when its result
  number appears in the answer, at or after where the previous step's was
  found; the first step not done is where the continuation starts;
* a step is not done, whatever else was written, when the answer's last
  computation of its expression gives another number (``16 * 2 = 30``):
  the continuation starts again at it;
* a step without a number is done when its text is written or a later step
  is done;
* once the final line's ``\\boxed{..}`` is written, the answer is complete:
  nothing is sent and the finish is ``stop``.

The question is never read for numbers, so its own numbers count for
nothing; a number the answer restates (or a result that happens to equal
one the answer wrote earlier) does count: the rule trusts what is written.

A fresh step follows the answer after a space when it does not end in
whitespace. If the answer stops inside the line it starts with (``Money saved: 16 * 2
=``), the rest of that line comes (`` 32.``), not the line again; an answer
that stops at the end of a done step's line goes on with a new line.

``oracle`` is a comparison-only sanity check, not a model: it skips ahead,
leaving out the earliest steps not yet written so that the final answer
fits in ``max_tokens`` (four tokens always give ``The answer is \\boxed{45}.``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Literal

from cloud.engine import Delta, Generation
from cloud.expert_problems import KnownProblem, Step, load_problems, numbers
from protocol.calls import strip_calls
from protocol.errors import InvalidRequest, ModelUnavailable
from protocol.stops import StopMatcher
from protocol.wire import ChatMessage, Usage

__all__ = ["EXPERT_MODES", "ExpertEngine", "ExpertMode"]

ExpertMode = Literal["faithful", "oracle"]
EXPERT_MODES: tuple[ExpertMode, ...] = ("faithful", "oracle")
_PIECE = re.compile(r"\s*\S+")
_SPACE = re.compile(r"\s+")
_AFTER_EQUALS = re.compile(r"\s*=\s*\$?([0-9][0-9,]*(?:\.[0-9]+)?)")
log = logging.getLogger(__name__)


class ExpertEngine:
    """Answers known problems from their worked solutions (see the module docstring)."""

    def __init__(
        self,
        problems: Sequence[KnownProblem],
        model_id: str = "expert",
        mode: ExpertMode = "faithful",
    ) -> None:
        if not problems:
            raise ModelUnavailable("the expert engine needs at least one problem")
        if mode not in EXPERT_MODES:
            raise ModelUnavailable(f"unknown expert mode {mode!r}: faithful or oracle")
        self.problems = sorted(problems, key=lambda p: -len(p.question))
        self.model_id = model_id
        self.mode = mode

    @classmethod
    def load(
        cls, path: Path, *, model_id: str | None = None, mode: ExpertMode = "faithful"
    ) -> ExpertEngine:
        engine = cls(load_problems(path), model_id or "expert", mode)
        log.info("expert engine: %d problems from %s, %s mode", len(engine.problems), path, mode)
        return engine

    def complete(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        return self._answer(prompt, generation)

    def chat(
        self, messages: Sequence[ChatMessage], generation: Generation, *, continue_final: bool
    ) -> AsyncIterator[Delta]:
        return self._answer("\n".join(m.content for m in messages), generation)

    async def start(self) -> None:
        """Nothing to load beyond the problem file."""

    async def aclose(self) -> None:
        """Nothing to free."""

    async def _answer(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        problem = next((p for p in self.problems if p.question in prompt), None)
        if problem is None:
            raise InvalidRequest(
                "the expert engine knows no problem in this prompt: it only answers the problems "
                "in its --problems file", param="prompt",
            )  # fmt: skip
        written = strip_calls(prompt[prompt.rindex(problem.question) + len(problem.question) :])
        if self.mode == "oracle":
            pieces, complete = _oracle(problem, written, generation.max_tokens)
            if pieces and prompt[-1:].strip():
                pieces[0] = " " + pieces[0].lstrip()
        else:
            pieces, complete = _cut(_faithful(problem, written), generation.max_tokens)
        yield Delta()
        stops = StopMatcher(generation.stop)
        produced, finish = 0, "stop" if complete else "length"
        for piece in pieces:
            produced += 1
            text, hit = stops.feed(piece)
            if text:
                yield Delta(text=text)
            if hit:
                finish = "stop"
                break
        usage = Usage.of(len(_PIECE.findall(prompt)), produced)
        yield Delta(finish_reason=finish, usage=usage)  # type: ignore[arg-type]


def _cut(text: str, limit: int | None) -> tuple[list[str], bool]:
    """The pieces of ``text`` that fit in ``limit``, and whether they all do."""
    pieces = _PIECE.findall(text)
    if limit is None or len(pieces) <= limit:
        return pieces, True
    return pieces[:limit], False


def _faithful(problem: KnownProblem, written: str) -> str:
    """What follows ``written``: the steps from the first not done, then the final line."""
    if _final_written(problem, written):
        return ""
    start = _first_not_done(problem.steps, written)
    text = "\n".join([*(s.text for s in problem.steps[start:]), problem.final])
    begun = _begun(written, text)
    if begun:
        return text[begun:]
    if start and not written[-1:].isspace():
        previous = problem.steps[start - 1].text
        ended = _begun(written, previous)
        if ended and ended >= len(previous) - 1:  # it stopped at that line's end
            return previous[ended:] + "\n" + text
    return text if written[-1:].isspace() else " " + text


def _final_written(problem: KnownProblem, written: str) -> bool:
    """Whether the answer holds the final line, or at least its ``\\boxed{..}``."""
    boxed = problem.boxed
    if boxed and _SPACE.sub("", boxed) in _SPACE.sub("", written):
        return True
    return problem.final in written


def _first_not_done(steps: Sequence[Step], written: str) -> int:
    """The index of the step the continuation starts at (see the module docstring)."""
    found, position, start = numbers(written), 0, len(steps)
    for index, step in enumerate(steps):
        if step.result is None:
            continue
        if _contradicted(step, written) or step.result not in found[position:]:
            start = index
            break
        position = found.index(step.result, position)
    while start and steps[start - 1].result is None and steps[start - 1].text not in written:
        start -= 1
    return start


def _contradicted(step: Step, written: str) -> bool:
    """Whether the answer's last computation of ``step``'s expression gives another number."""
    if step.expression is None:
        return False
    parts = re.findall(r"[0-9.,]+|\S", step.expression)
    pattern = r"(?<![0-9.,])" + r"\s*".join(map(re.escape, parts)) + _AFTER_EQUALS.pattern
    computed = [numbers(m.group(1)) for m in re.finditer(pattern, written)]
    return bool(computed) and computed[-1][:1] != [step.result]


def _oracle(problem: KnownProblem, written: str, limit: int | None) -> tuple[list[str], bool]:
    """The pieces that finish the answer within ``limit`` by leaving out the earliest steps.

    Steps already written are skipped, and so is the part of the next line the
    answer has already begun (``Money saved: 16 * 2 =`` continues with ``32.``).
    """
    texts = [step.text for step in problem.steps]
    done = max((i + 1 for i, step in enumerate(texts) if step in written), default=0)
    steps = texts[done:]
    while True:
        text = "\n".join([*steps, problem.final])
        text = text[_begun(written, text) :]
        pieces = _PIECE.findall(text)
        if limit is None or len(pieces) <= limit:
            return pieces, True
        if not steps:
            return pieces[:limit], False
        steps.pop(0)


def _begun(written: str, text: str) -> int:
    """How many characters of ``text`` the end of ``written`` already holds (3 at least)."""
    line = written[written.rfind("\n") + 1 :]
    for size in range(min(len(line), len(text)), 2, -1):
        if line.endswith(text[:size]):
            return size
    return 0

"""The expert engine: a clearly labelled stand-in for a strong cloud model on known problems.

The small cloud models that run offline cannot solve arithmetic word
problems, so on a CPU there would be no reason for the SLM to call. This
engine knows the worked solution of every problem in its ``--problems`` file
(JSONL with ``question``, ``answer`` and ``solution``, as written by
``relay-train data``) and nothing else: it finds the problem whose question
is in the prompt and continues the answer with the solution steps that are
not written yet, then ``The answer is \\boxed{...}.`` It exists to show the
learning signal on a CPU; real models are the default everywhere else.

Tokens are counted as words with their leading whitespace. When the rest of
the solution does not fit in ``max_tokens``, the earliest steps are left out
so the final answer still comes; if even that does not fit, the text is cut
(``finish_reason="length"``). A complete continuation ends with ``stop``. A
prompt that holds no known question is a 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud.engine import Delta, Generation
from protocol.errors import InvalidRequest, ModelUnavailable
from protocol.stops import StopMatcher
from protocol.wire import ChatMessage, Usage

__all__ = ["ExpertEngine"]

_PIECE = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class _Known:
    question: str
    steps: tuple[str, ...]
    final: str


class ExpertEngine:
    """Answers known problems from their worked solutions (see the module docstring)."""

    def __init__(self, problems: Sequence[_Known], model_id: str = "expert") -> None:
        if not problems:
            raise ModelUnavailable("the expert engine needs at least one problem")
        self.problems = sorted(problems, key=lambda p: -len(p.question))
        self.model_id = model_id

    @classmethod
    def load(cls, path: Path, *, model_id: str | None = None) -> ExpertEngine:
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            known = [_known(row) for row in rows]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelUnavailable(f"cannot read expert problems from {path}: {exc}") from exc
        return cls(known, model_id or "expert")

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
        written = prompt[prompt.rindex(problem.question) + len(problem.question) :]
        pieces, complete = _continuation(problem, written, generation.max_tokens)
        if pieces and prompt[-1:].strip():
            pieces[0] = " " + pieces[0].lstrip()
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


def _known(row: dict[str, object]) -> _Known:
    solution = str(row["solution"]) or f"The answer is \\boxed{{{row['answer']}}}."
    lines = [line.strip() for line in solution.splitlines() if line.strip()]
    return _Known(str(row["question"]), tuple(lines[:-1]), lines[-1])


def _continuation(problem: _Known, written: str, limit: int | None) -> tuple[list[str], bool]:
    """The pieces that finish the answer within ``limit``, and whether they all fit.

    Steps already written are skipped, and so is the part of the next line the
    answer has already begun (``Money saved: 16 * 2 =`` continues with ``32.``).
    """
    done = max((i + 1 for i, step in enumerate(problem.steps) if step in written), default=0)
    steps = list(problem.steps[done:])
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

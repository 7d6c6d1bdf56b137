"""Answering problems with the edge runtime and grading them: the measurement both
``relay-train`` (its held-out check) and ``relay eval`` use.

Every question is answered by the edge's own relay loop on a GGUF model
(llama.cpp), with the given policy and a real cloud endpoint, and graded by
:func:`training.grading.grade`. One :class:`QuestionResult` per question holds
what the report needs: the answer, what was extracted, tokens by source,
calls, cloud tokens and cost, latency, fallbacks, the finish reason and the
malformed commands the SLM wrote (such as ``<call>284.</call>``, shown as text).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from edge.core.loop import RelayLoop
from edge.core.prompt import build_prompt
from edge.llama import LlamaChat
from protocol.calls import malformed_commands
from protocol.events import FallbackEvent, RelayEvent, TextEvent
from training.grading import grade
from training.problems import Problem, messages_for

__all__ = ["QuestionResult", "answer_problems", "question_seed", "slm_malformed_commands"]


@dataclass(frozen=True)
class QuestionResult:
    """One question answered by one system."""

    system: str
    id: str
    question: str
    reference: str
    answer: str
    extracted: str | None
    correct: bool
    boxed_correct: bool
    last_number_correct: bool
    slm_tokens: int
    llm_tokens: int
    calls: int
    call_ratio: float
    cloud_prompt_tokens: int
    cloud_completion_tokens: int
    cost_usd: float
    latency_s: float
    fallbacks: int
    finish_reason: str
    malformed_commands: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def question_seed(seed: int, problem: Problem) -> int:
    """The seed of one question: the same in every system and every run."""
    return (seed * 1_000_003 + int(problem.id[:8] or "0", 16)) % 2**32


def slm_malformed_commands(events: Sequence[RelayEvent]) -> int:
    """Malformed commands in the text the SLM wrote (cloud text is not counted): each stretch
    of SLM text between two cloud texts is read on its own."""
    stretches = [""]
    for event in events:
        if isinstance(event, TextEvent) and event.source == "slm":
            stretches[-1] += event.text
        elif isinstance(event, TextEvent) and stretches[-1]:
            stretches.append("")
    return sum(malformed_commands(text) for text in stretches)


def answer_problems(
    system: str,
    loop: RelayLoop,
    problems: Sequence[Problem],
    *,
    seed: int,
    on_result: Callable[[QuestionResult], None] | None = None,
) -> Iterator[QuestionResult]:
    """Answer each problem with ``loop`` (one llama.cpp model); yield graded results."""
    chat = LlamaChat(loop.model)  # type: ignore[arg-type]
    n_ctx = loop.model.n_ctx
    for problem in problems:
        prompt = build_prompt(
            chat, messages_for(problem), n_ctx=n_ctx, reserve=loop.limits.max_tokens // 4
        )
        started = time.monotonic()
        events = list(loop.run(prompt, seed=question_seed(seed, problem)))
        record = loop.record
        assert record is not None
        verdict = grade(record.shown, problem.answer)
        result = QuestionResult(
            system=system,
            id=problem.id,
            question=problem.question,
            reference=problem.answer,
            answer=record.shown,
            extracted=verdict.extracted,
            correct=verdict.correct,
            boxed_correct=verdict.boxed_correct,
            last_number_correct=verdict.last_number_correct,
            slm_tokens=record.slm_tokens,
            llm_tokens=record.llm_tokens,
            calls=len(record.calls),
            call_ratio=record.call_ratio,
            cloud_prompt_tokens=sum(c.prompt_tokens for c in record.calls),
            cloud_completion_tokens=sum(c.completion_tokens for c in record.calls),
            cost_usd=record.cost_usd,
            latency_s=time.monotonic() - started,
            fallbacks=sum(isinstance(e, FallbackEvent) for e in events),
            finish_reason=record.finish_reason or "length",
            malformed_commands=slm_malformed_commands(events),
        )
        if on_result is not None:
            on_result(result)
        yield result

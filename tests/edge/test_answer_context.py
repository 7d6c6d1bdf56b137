"""The answer's context and its record change together, step by step."""

from __future__ import annotations

from edge.core.context import AnswerContext
from edge.core.record import AnswerRecord
from edge.core.steps import Extend, Rewind


def test_edits_are_steps_and_record_edits_alike() -> None:
    context = AnswerContext(AnswerRecord("a", prompt_tokens=0), room=10)
    assert list(context.append([1, 2, 3], local=True)) == [Extend([1, 2, 3])]
    assert list(context.append([4], local=False)) == [Extend([4])]
    assert list(context.rewind(2)) == [Rewind(2)]
    assert (context.record.tokens, context.record.mask) == ([1, 2], [1, 1])
    assert context.left == 8


def test_rewinding_nothing_keeps_the_whole_answer() -> None:
    context = AnswerContext(AnswerRecord("a", prompt_tokens=0), room=10)
    list(context.append([5, 6], local=True))
    assert list(context.rewind(0)) == []
    assert context.record.tokens == [5, 6]

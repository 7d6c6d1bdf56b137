"""Grading answers: the one function training and evaluation share.

The final answer is read two ways and both are reported: the last
``\\boxed{...}`` (the method's format), and the last number in the text (a
fallback for answers that forgot the box). ``correct`` uses the boxed answer
when there is one, else the last number. Equivalence is decided by
``math-verify`` (``1/2`` equals ``0.5``, ``\\frac{3}{4}`` equals ``0.75``); its
own timeouts use ``signal.alarm``, which only works on the main thread, so they
are switched off here and grading runs anywhere.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Grade", "grade"]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")

logging.getLogger("math_verify").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Grade:
    """The verdict on one answer."""

    correct: bool
    boxed: str | None
    boxed_correct: bool
    last_number: str | None
    last_number_correct: bool

    @property
    def extracted(self) -> str | None:
        """The answer that was judged: boxed if present, else the last number."""
        return self.boxed if self.boxed is not None else self.last_number


def grade(response: str, reference: str) -> Grade:
    """Judge ``response`` against the reference answer ``reference``."""
    from training.problems import _last_boxed

    boxed = _last_boxed(response)
    numbers = _NUMBER.findall(response)
    last = numbers[-1].replace(",", "") if numbers else None
    boxed_ok = boxed is not None and _same(boxed, reference)
    last_ok = last is not None and _same(last, reference)
    return Grade(boxed_ok if boxed is not None else last_ok, boxed, boxed_ok, last, last_ok)


def _same(answer: str, reference: str) -> bool:
    from math_verify import parse, verify

    gold = _parse(parse, reference)
    guess = _parse(parse, answer)
    if not gold or not guess:
        return answer.strip() == reference.strip()
    try:
        return bool(verify(gold, guess, timeout_seconds=None))
    except Exception:  # math-verify raises on exotic input; an unreadable answer is wrong
        return False


def _parse(parse: Any, text: str) -> list[Any]:
    wrapped = text if "\\boxed" in text or "$" in text else f"${text}$"
    try:
        return list(parse(wrapped, parsing_timeout=None))
    except Exception:
        return []

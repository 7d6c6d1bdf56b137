"""The repetition guard finds an answer that loops, and only that."""

from __future__ import annotations

from edge.core.repetition import SPAN, repeating


def test_a_loop_is_found_once_it_repeated_enough() -> None:
    unit = list(range(10))
    assert repeating([99, *unit * 4], 4) == 10
    assert repeating([99, *unit * 3], 4) is None
    assert repeating([99, *unit * 4, 1], 4) is None  # the tail no longer repeats


def test_short_repeats_such_as_digits_are_not_a_loop() -> None:
    zeros = [0] * (SPAN - 1)  # "1000000...": fewer than SPAN tokens
    assert repeating([1, *zeros], 4) is None
    assert repeating([1, *[0] * 40], 4) is not None
    assert repeating([5, 6, 5, 6, 5, 6, 5, 6], 4) is None  # 8 tokens in all: too short

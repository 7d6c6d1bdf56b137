"""The one grading function: boxed first, the last number as a fallback, both reported."""

from __future__ import annotations

import threading

import pytest

from training.grading import grade


@pytest.mark.parametrize(
    ("response", "reference", "correct", "extracted"),
    [
        ("So the total is \\boxed{42}.", "42", True, "42"),
        ("\\boxed{\\frac{3}{4}}", "0.75", True, "\\frac{3}{4}"),
        ("\\boxed{3/4}", "\\frac{3}{4}", True, "3/4"),
        ("It drops to \\boxed{-7} degrees.", "-7", True, "-7"),
        ("\\boxed{1,250}", "1250", True, "1,250"),
        ("\\boxed{\\text{12}}", "12", True, "\\text{12}"),
        ("I think 41... no, 42 apples", "42", True, "42"),  # no box: the last number
        ("\\boxed{7}, though some say 42", "42", False, "7"),  # a box wins over later numbers
        ("\\boxed{}", "5", False, ""),
        ("\\boxed{5", "5", True, "5"),  # an unclosed box is no box; the last number is read
        ("no answer at all", "5", False, None),
        ("", "5", False, None),
        ("\\boxed{x^2 + }", "4", False, "x^2 +"),
    ],
)
def test_grading(response: str, reference: str, correct: bool, extracted: str | None) -> None:
    verdict = grade(response, reference)
    assert verdict.correct is correct
    assert verdict.extracted == extracted


def test_both_readings_are_reported() -> None:
    verdict = grade("\\boxed{7}, though some say 42", "42")
    assert (verdict.boxed_correct, verdict.last_number_correct) == (False, True)


def test_grading_works_off_the_main_thread() -> None:
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(grade("\\boxed{0.5}", "1/2").correct))
    worker.start()
    worker.join()
    assert results == [True]

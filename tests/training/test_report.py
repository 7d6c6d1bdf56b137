"""Evaluation figures: Wilson intervals, the router's curve, the matched chance, the headline."""

from __future__ import annotations

from dataclasses import replace

import pytest

from training.evaluate import QuestionResult
from training.report import headline, matched_p, router_curve, summarise, wilson


def result(i: int, correct: bool, slm: int, llm: int, system: str = "s") -> QuestionResult:
    return QuestionResult(
        system=system, id=f"q{i}", question="", reference="", answer="", extracted=None,
        correct=correct, boxed_correct=correct, last_number_correct=correct, slm_tokens=slm,
        llm_tokens=llm, calls=int(llm > 0), call_ratio=llm / (slm + llm) if slm + llm else 0.0,
        cloud_prompt_tokens=0, cloud_completion_tokens=llm, cost_usd=0.0, latency_s=1.0,
        fallbacks=0, finish_reason="stop",
    )  # fmt: skip


def test_wilson_interval() -> None:
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.490, abs=1e-3)
    assert high == pytest.approx(0.943, abs=1e-3)
    assert wilson(10, 10)[1] == 1.0
    assert wilson(0, 10)[0] == 0.0
    assert wilson(0, 0) == (0.0, 1.0)


def test_summary_pools_the_call_ratio() -> None:
    rows = [result(0, True, 90, 10), result(1, False, 50, 50)]
    summary = summarise("learned", rows)
    assert summary.accuracy == 0.5
    assert summary.call_ratio == pytest.approx(60 / 200)  # pooled, not the mean of 0.1 and 0.5
    assert summary.cloud_tokens_per_question == 30


ALONE = [result(i, i < 2, 100, 0) for i in range(10)]  # 20 % right, 100 tokens each
CLOUD = [result(i, i < 8, 0, 50) for i in range(10)]  # 80 % right, 50 cloud tokens each


def test_router_curve_runs_from_slm_to_llm_in_cloud_tokens_per_question() -> None:
    start, middle, end = router_curve(ALONE, CLOUD, [0.0, 0.5, 1.0])
    assert (start.cost, start.accuracy) == (0.0, pytest.approx(0.2))
    assert (end.cost, end.accuracy) == (pytest.approx(50.0), pytest.approx(0.8))
    assert (middle.cost, middle.accuracy) == (pytest.approx(25.0), pytest.approx(0.5))
    assert matched_p(ALONE, CLOUD, 25.0) == pytest.approx(0.5)
    assert matched_p(ALONE, CLOUD, 80.0) == 1.0  # more than the cloud alone spends
    assert matched_p(ALONE, [result(0, True, 0, 0)], 5.0) == 1.0  # a cloud that spent nothing


def test_headline_compares_at_equal_accuracy() -> None:
    # learned: 50 % right (the router needs p = 0.5 for that: 25 cloud tokens per question)
    learned = [result(i, i < 5, 95, 5) for i in range(10)]
    line = headline(learned, ALONE, CLOUD, rounds=200)
    assert line.savings == pytest.approx(1 - 5 / 25)
    assert "fewer cloud tokens" in line.statement
    worse = [result(i, i < 1, 95, 5) for i in range(10)]
    assert headline(worse, ALONE, CLOUD, rounds=50).savings is None


def test_summary_counts_malformed_commands() -> None:
    rows = [replace(result(0, True, 90, 10), malformed_commands=2), result(1, False, 50, 50)]
    assert summarise("learned", rows).malformed_commands == 2


def test_an_undefined_headline_says_which_condition_fails() -> None:
    learned = [result(i, i < 5, 95, 5) for i in range(10)]
    weak_cloud = [result(i, i < 1, 0, 50) for i in range(10)]  # 10 %, below the SLM's 20 %
    line = headline(learned, ALONE, weak_cloud, rounds=50)
    assert line.savings is None
    assert "the cloud alone (10%) is not more accurate than the SLM alone (20%)" in line.statement
    worse = [result(i, i < 1, 95, 5) for i in range(10)]
    statement = headline(worse, ALONE, CLOUD, rounds=50).statement
    assert "the learned system (10%) is not more accurate than the SLM alone (20%)" in statement

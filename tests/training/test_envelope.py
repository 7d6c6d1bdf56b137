"""Envelopes of operating points, the paired bootstrap at equal cost, and selectivity."""

from __future__ import annotations

import math

import pytest

from tests.training.test_report import result
from training.compare import against_envelope, auroc, selectivity
from training.envelope import Envelope, OperatingPoint
from training.eval_report import SlmRuns, build_report


def test_the_envelope_is_the_upper_hull_mixing_points_at_random() -> None:
    points = [OperatingPoint(0, 0.2), OperatingPoint(10, 0.3), OperatingPoint(20, 0.6),
              OperatingPoint(40, 0.7), OperatingPoint(30, 0.5)]  # fmt: skip
    envelope = Envelope(points)
    # (10, 0.3) lies below the segment from (0, 0.2) to (20, 0.6): mixing those two beats it.
    assert [(p.cost, p.accuracy) for p in envelope.curve()] == [(0, 0.2), (20, 0.6), (40, 0.7)]
    assert envelope(10) == pytest.approx(0.4)
    assert envelope(30) == pytest.approx(0.65)
    assert envelope(0) == pytest.approx(0.2)


def test_the_envelope_never_falls_and_the_cheapest_point_bounds_it() -> None:
    envelope = Envelope([OperatingPoint(0, 0.3), OperatingPoint(10, 0.8), OperatingPoint(50, 0.4)])
    assert envelope(50) == pytest.approx(0.8)  # a richer budget can still buy the best point
    assert envelope(1000) == pytest.approx(0.8)
    assert math.isnan(Envelope([OperatingPoint(5, 0.5)])(1))  # cheaper than any point
    # Two points at one cost: the better one counts.
    assert Envelope([OperatingPoint(0, 0.1), OperatingPoint(0, 0.4)])(0) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="at least one"):
        Envelope([])


def test_learned_against_an_envelope_at_its_own_cost() -> None:
    n = 40
    alone = [result(i, i < 8, 100, 0, "slm") for i in range(n)]  # 20 %, no cloud
    entropy = [result(i, i < 24, 90, 20, "entropy") for i in range(n)]  # 60 % at 20 tokens
    learned = [result(i, i < 20, 90, 10, "learned") for i in range(n)]  # 50 % at 10 tokens
    found = against_envelope(learned, {"slm": alone, "entropy": entropy}, reference="env",
                             rounds=300)  # fmt: skip
    assert found is not None
    # The envelope at 10 tokens: halfway from 20 % to 60 %, 40 %; learned is 10 points above.
    assert found.points == pytest.approx(10.0)
    assert found.cost == pytest.approx(10.0)
    assert found.low is not None
    assert found.high is not None
    assert found.low < found.points < found.high
    assert "+10.0 points against env at 10.0 cloud tokens per question" in found.statement


def test_the_bootstrap_pairs_questions() -> None:
    # The same questions right in both systems: every resample gives the same difference.
    alone = [result(i, i % 2 == 0, 100, 0) for i in range(30)]
    learned = [result(i, i % 2 == 0, 100, 0) for i in range(30)]
    found = against_envelope(learned, {"slm": alone}, reference="alone", rounds=200)
    assert found is not None
    assert (found.points, found.low, found.high) == (0.0, 0.0, 0.0)


def test_no_common_question_no_comparison() -> None:
    learned = [result(0, True, 10, 0)]
    assert against_envelope(learned, {"slm": [result(1, True, 10, 0)]}, reference="x") is None


def test_selectivity_and_auroc() -> None:
    alone = [result(i, i < 5, 100, 0) for i in range(10)]  # solves 0-4, fails 5-9
    # Calls on 4 of the 5 it fails and 1 of the 5 it solves.
    routed = [result(i, True, 90, 10 if i in (1, 5, 6, 7, 8) else 0) for i in range(10)]
    found = selectivity("learned", routed, alone)
    assert found.calls_where_fails_alone == pytest.approx(0.8)
    assert found.calls_where_solves_alone == pytest.approx(0.2)
    assert found.auroc == pytest.approx(0.8)  # (0.8 + (1 - 0.2)) / 2 for a yes/no score
    assert auroc([1, 1], [0, 0]) == 1.0
    assert auroc([0, 0], [0, 0]) == 0.5
    assert auroc([], [1]) is None
    never = selectivity("never", [result(i, True, 100, 0) for i in range(10)], alone)
    assert never.auroc == 0.5


def test_the_report_compares_learned_with_each_slms_envelope() -> None:
    n = 30
    trained = SlmRuns("model", ":model", shown={"slm", "learned", "entropy"})
    trained.alone = [result(i, i < 6, 100, 0) for i in range(n)]
    trained.learned = [result(i, i < 15, 90, 8) for i in range(n)]
    trained.entropy = {"entropy@3/8": [result(i, i < 12, 90, 16) for i in range(n)]}
    base = SlmRuns("base", ":base", shown={"slm", "entropy"})
    base.alone = [result(i, i < 3, 100, 0) for i in range(n)]
    base.entropy = {"entropy@4/8": [result(i, i < 9, 90, 20) for i in range(n)]}
    report = build_report([trained, base], seed=1)
    lines = report.headlines["learned:model"]
    assert lines[0].startswith("+20.0 points against its own entropy envelope (model)")
    assert lines[1].startswith("+32.0 points against base's entropy envelope")  # 10 % → 30 %
    assert lines[2].startswith("+30.0 points against the SLM alone")
    assert [p.cost for p in report.curves["entropy envelope:base"]] == [0.0, 20.0]
    assert {s.system for s in report.selectivity} >= {"learned:model", "entropy@4/8:base"}
    assert report.no_headline == ""
    assert build_report([base]).no_headline.startswith("No headline: it compares")

"""Learned against training-free at equal cost: paired bootstrap differences and selectivity.

* :func:`against_envelope` is the headline: the learned system's accuracy less
  what an envelope of other systems (an SLM's entropy sweep, with that SLM
  alone at zero cost) reaches at the learned system's cloud tokens per
  question, with a 95 % interval from a paired bootstrap over questions
  (every system is resampled on the same questions each round).
* :func:`selectivity`: where a system calls. Its call rate on the questions
  its SLM fails alone and on those it solves alone, and the AUROC of "called"
  as a predictor of "fails alone" (0.5: calls placed at random).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from training.envelope import Envelope, OperatingPoint
from training.evaluate import QuestionResult

__all__ = ["Difference", "Selectivity", "against_envelope", "auroc", "selectivity"]

Rows = Sequence[QuestionResult]


@dataclass(frozen=True)
class Difference:
    """Learned accuracy minus a reference's at the learned system's cost, in points."""

    reference: str
    cost: float
    learned: float
    other: float
    points: float
    low: float | None
    high: float | None

    @property
    def statement(self) -> str:
        """One sentence: the difference and its interval."""
        interval = (f" (95 % interval {self.low:+.1f} to {self.high:+.1f})"
                    if self.low is not None and self.high is not None else "")  # fmt: skip
        return (f"{self.points:+.1f} points against {self.reference} at "
                f"{self.cost:.1f} cloud tokens per question ({self.learned:.1%} vs "
                f"{self.other:.1%}){interval}")  # fmt: skip


def against_envelope(
    learned: Rows,
    family: Mapping[str, Rows],
    *,
    reference: str,
    rounds: int = 2000,
    seed: int = 0,
) -> Difference | None:
    """Learned minus the envelope of ``family`` (system name → rows) at learned's cost.

    Only questions every system answered are compared; ``None`` when there are none.
    """
    ids = _common([learned, *family.values()])
    if not ids:
        return None
    table = {name: _by_id(rows, ids) for name, rows in family.items()}
    mine = _by_id(learned, ids)
    point = _difference(mine, table, range(len(ids)))
    rng = random.Random(seed)
    samples = []
    for _ in range(rounds):
        pick = [rng.randrange(len(ids)) for _ in ids]
        value = _difference(mine, table, pick)
        if value == value:  # not nan
            samples.append(value)
    cost, accuracy = _cost_accuracy(mine, range(len(ids)))
    other = accuracy - point / 100
    if len(samples) < rounds * 0.9:
        return Difference(reference, cost, accuracy, other, point, None, None)
    samples.sort()
    low, high = samples[int(0.025 * len(samples))], samples[int(0.975 * len(samples)) - 1]
    return Difference(reference, cost, accuracy, other, point, low, high)


def _difference(
    mine: list[QuestionResult], table: Mapping[str, list[QuestionResult]], pick: Sequence[int]
) -> float:
    cost, accuracy = _cost_accuracy(mine, pick)
    points = [OperatingPoint(*_cost_accuracy(rows, pick), name) for name, rows in table.items()]
    return 100 * (accuracy - Envelope(points)(cost))


def _cost_accuracy(rows: Sequence[QuestionResult], pick: Sequence[int]) -> tuple[float, float]:
    n = len(pick)
    return (sum(rows[i].llm_tokens for i in pick) / n, sum(rows[i].correct for i in pick) / n)


def _common(groups: Sequence[Rows]) -> list[str]:
    sets = [{r.id for r in rows} for rows in groups]
    return [r.id for r in groups[0] if all(r.id in s for s in sets)]


def _by_id(rows: Rows, ids: Sequence[str]) -> list[QuestionResult]:
    found = {r.id: r for r in rows}
    return [found[i] for i in ids]


@dataclass(frozen=True)
class Selectivity:
    """Where a system calls, judged by its SLM alone on the same questions."""

    system: str
    calls_where_fails_alone: float | None
    calls_where_solves_alone: float | None
    auroc: float | None


def selectivity(system: str, routed: Rows, alone: Rows) -> Selectivity:
    """Call rates by the SLM-alone outcome, and the AUROC of "called" for "fails alone"."""
    outcome = {r.id: r.correct for r in alone}
    rows = [r for r in routed if r.id in outcome]
    fails = [r.calls > 0 for r in rows if not outcome[r.id]]
    solves = [r.calls > 0 for r in rows if outcome[r.id]]
    return Selectivity(system, _rate(fails), _rate(solves), auroc(fails, solves))


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """The chance a positive scores above a negative (ties count half); ``None`` if either
    side is empty."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None

"""Operating points and their envelope: the best accuracy a family of systems reaches at a cost.

A system run over a question set is one operating point: its cloud tokens per
question (the cost) and its accuracy. Choosing between two operating points
at random for each question reaches every point on the segment between them,
and any system can spend less than it may, so what a family of systems can
do at cost ``c`` is its *envelope*: the upper concave hull of its points,
flat past its most accurate one. The family always holds its SLM alone at
zero cost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Envelope", "OperatingPoint"]


@dataclass(frozen=True)
class OperatingPoint:
    """One system's cost (cloud tokens per question) and accuracy."""

    cost: float
    accuracy: float
    system: str = ""


class Envelope:
    """The upper concave hull of operating points, non-decreasing in cost."""

    def __init__(self, points: Iterable[OperatingPoint]) -> None:
        ordered = sorted(points, key=lambda p: (p.cost, -p.accuracy))
        if not ordered:
            raise ValueError("an envelope needs at least one operating point")
        self.corners = _upper_hull(ordered)

    def __call__(self, cost: float) -> float:
        """The best accuracy reachable at no more than ``cost`` cloud tokens per question."""
        corners = self.corners
        if cost < corners[0].cost:
            return float("nan")  # cheaper than the cheapest point: not reachable
        for left, right in itertools.pairwise(corners):
            if cost <= right.cost:
                share = (cost - left.cost) / (right.cost - left.cost)
                return left.accuracy + share * (right.accuracy - left.accuracy)
        return corners[-1].accuracy

    def curve(self) -> list[OperatingPoint]:
        """The hull's corners, cheapest first."""
        return list(self.corners)


def _upper_hull(points: Sequence[OperatingPoint]) -> list[OperatingPoint]:
    """Andrew's monotone chain, upper side, cut at the most accurate corner (the envelope
    never falls: a richer budget can always buy the best point)."""
    hull: list[OperatingPoint] = []
    for point in points:
        if hull and point.cost == hull[-1].cost:
            continue  # same cost: the first (most accurate) one stays
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) >= 0:
            hull.pop()
        hull.append(point)
    best = max(range(len(hull)), key=lambda i: (hull[i].accuracy, -i))
    return hull[: best + 1]


def _cross(a: OperatingPoint, b: OperatingPoint, c: OperatingPoint) -> float:
    """Positive when ``b`` lies below the segment from ``a`` to ``c``."""
    return (b.cost - a.cost) * (c.accuracy - a.accuracy) - (b.accuracy - a.accuracy) * (
        c.cost - a.cost
    )

"""Evaluation figures: per-system statistics, the random router's curve, the headline, a plot.

* :func:`summarise` gives each system its accuracy with a 95 % Wilson
  interval, the pooled call ratio (cloud tokens / answer tokens, over all its
  answers, as the paper counts it), cloud tokens and dollars per question,
  tokens per second, latency percentiles and the malformed commands its SLM wrote.
* :func:`router_curve` is the query-level random router at routing chance
  ``p``: each question answered by the cloud alone with probability ``p``,
  else by the SLM alone. Its expected accuracy and cloud tokens per question
  are linear in ``p`` between the two, so the curve comes from the ``slm``
  and ``llm`` runs.
* :func:`headline`: the cloud tokens the learned system saves against that
  router at equal accuracy, with a bootstrap interval over questions, or a
  plain statement of why it cannot be told at this size.
"""

from __future__ import annotations

import csv
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from training.envelope import OperatingPoint
from training.evaluate import QuestionResult

__all__ = [
    "Headline",
    "SystemSummary",
    "headline",
    "matched_p",
    "plot",
    "router_curve",
    "summarise",
    "wilson",
    "write_csv",
]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    phat = successes / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, min(phat, centre - half)), min(1.0, max(phat, centre + half))


@dataclass(frozen=True)
class SystemSummary:
    """One system over all its questions."""

    system: str
    questions: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    call_ratio: float
    calls_per_question: float
    cloud_tokens_per_question: float
    usd_per_question: float
    tokens_per_s: float
    latency_p50_s: float
    latency_p95_s: float
    fallbacks: int
    malformed_commands: int


def summarise(system: str, rows: Sequence[QuestionResult]) -> SystemSummary:
    n = len(rows)
    correct = sum(r.correct for r in rows)
    low, high = wilson(correct, n)
    tokens = sum(r.slm_tokens + r.llm_tokens for r in rows)
    cloud = sum(r.llm_tokens for r in rows)
    latency = sorted(r.latency_s for r in rows) or [0.0]
    return SystemSummary(
        system=system,
        questions=n,
        accuracy=correct / n if n else 0.0,
        accuracy_low=low,
        accuracy_high=high,
        call_ratio=cloud / tokens if tokens else 0.0,
        calls_per_question=sum(r.calls for r in rows) / n if n else 0.0,
        cloud_tokens_per_question=cloud / n if n else 0.0,
        usd_per_question=sum(r.cost_usd for r in rows) / n if n else 0.0,
        tokens_per_s=tokens / sum(latency) if sum(latency) else 0.0,
        latency_p50_s=statistics.median(latency),
        latency_p95_s=latency[min(len(latency) - 1, math.ceil(0.95 * len(latency)) - 1)],
        fallbacks=sum(r.fallbacks for r in rows),
        malformed_commands=sum(r.malformed_commands for r in rows),
    )


def router_curve(
    alone: Sequence[QuestionResult], cloud: Sequence[QuestionResult], ps: Sequence[float]
) -> list[OperatingPoint]:
    """The random router's expected cloud tokens per question and accuracy at each ``p``."""
    a_slm, a_llm = _mean(r.correct for r in alone), _mean(r.correct for r in cloud)
    cost = _mean(r.llm_tokens for r in cloud)
    return [OperatingPoint(p * cost, (1 - p) * a_slm + p * a_llm, f"p={p:g}") for p in ps]


def matched_p(
    alone: Sequence[QuestionResult], cloud: Sequence[QuestionResult], cost: float
) -> float:
    """The routing chance whose expected cloud tokens per question equal ``cost``."""
    full = _mean(r.llm_tokens for r in cloud)
    return min(1.0, max(0.0, cost / full)) if full > 0 else 1.0


@dataclass(frozen=True)
class Headline:
    """Cloud tokens the learned system saves against the random router at its accuracy."""

    savings: float | None
    low: float | None
    high: float | None
    statement: str


def headline(
    learned: Sequence[QuestionResult],
    alone: Sequence[QuestionResult],
    cloud: Sequence[QuestionResult],
    *,
    rounds: int = 2000,
    seed: int = 0,
) -> Headline:
    """The savings at equal accuracy, with a 95 % bootstrap interval over questions."""
    point = _savings(learned, alone, cloud)
    if point is None:
        return Headline(None, None, None, _undefined(learned, alone, cloud))
    by_id = {r.id: r for r in learned}
    paired = [(by_id[a.id], a, c) for a, c in zip(alone, cloud, strict=True) if a.id in by_id]
    rng = random.Random(seed)
    samples = []
    for _ in range(rounds):
        pick = [paired[rng.randrange(len(paired))] for _ in paired]
        value = _savings([p[0] for p in pick], [p[1] for p in pick], [p[2] for p in pick])
        if value is not None:
            samples.append(value)
    samples.sort()
    if len(samples) < rounds * 0.9:
        return Headline(point, None, None, f"{point:.0%} fewer cloud tokens at equal accuracy; "
                        "not significant at this size (too few questions to bound it)")  # fmt: skip
    low, high = samples[int(0.025 * len(samples))], samples[int(0.975 * len(samples)) - 1]
    verdict = "" if low > 0 else "; not significant at this size"
    return Headline(point, low, high, f"{point:.0%} fewer cloud tokens than the random router at "
                    f"equal accuracy (95 % interval {low:.0%} to {high:.0%}){verdict}")  # fmt: skip


def _undefined(
    learned: Sequence[QuestionResult],
    alone: Sequence[QuestionResult],
    cloud: Sequence[QuestionResult],
) -> str:
    """Why no router matches the learned system: the one condition that fails, with figures."""
    a_slm, a_llm = _mean(r.correct for r in alone), _mean(r.correct for r in cloud)
    a_learned = _mean(r.correct for r in learned)
    if a_llm <= a_slm:
        return (
            f"not defined: the cloud alone ({a_llm:.0%}) is not more accurate than the SLM "
            f"alone ({a_slm:.0%}), so no router can be matched to the learned system"
        )
    if a_learned <= a_slm:
        return (
            f"not defined: the learned system ({a_learned:.0%}) is not more accurate than "
            f"the SLM alone ({a_slm:.0%}), so there is no accuracy to match a router at"
        )
    return "not defined: the cloud alone used no cloud tokens, so there are none to save"


def _savings(
    learned: Sequence[QuestionResult],
    alone: Sequence[QuestionResult],
    cloud: Sequence[QuestionResult],
) -> float | None:
    a_slm, a_llm = _mean(r.correct for r in alone), _mean(r.correct for r in cloud)
    a_learned = _mean(r.correct for r in learned)
    if a_llm <= a_slm or a_learned <= a_slm:
        return None
    p = min(1.0, (a_learned - a_slm) / (a_llm - a_slm))
    router_tokens = p * _mean(r.llm_tokens for r in cloud)
    if router_tokens <= 0:
        return None
    return 1.0 - _mean(r.llm_tokens for r in learned) / router_tokens


def _mean(values: object) -> float:
    items = list(values)  # type: ignore[call-overload]
    return sum(items) / len(items) if items else 0.0


def write_csv(summaries: Sequence[SystemSummary], path: Path) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(asdict(summaries[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in summaries)
    return path


FAMILY_COLOURS = {"slm": "#6c757d", "llm": "#212529", "learned": "#d6336c",
                  "entropy": "#1c7ed6", "random": "#f08c00"}  # fmt: skip
MARKERS = "osD^v"


def plot(
    summaries: Sequence[SystemSummary],
    curves: dict[str, list[OperatingPoint]],
    path: Path,
    *,
    title: str,
) -> Path:
    """Accuracy against cloud tokens per question: systems as points, envelopes as lines.

    Colour says the kind of system, the marker which SLM (when several are compared).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(_model_of(s.system) for s in summaries))
    figure, axis = plt.subplots(figsize=(9.5, 4.8))
    for name, points in curves.items():
        family = next((f for f in ("entropy", "learned") if name.startswith(f)), "random")
        model = _model_of(name)
        marker = MARKERS[models.index(model) % len(MARKERS)] if model in models else "o"
        axis.plot([p.cost for p in points], [p.accuracy for p in points], linestyle="--",
                  alpha=0.6, marker=marker, markersize=3, color=FAMILY_COLOURS[family],
                  label=name)  # fmt: skip
    for s in summaries:
        family = s.system.split("@")[0].split(":")[0]
        low, high = max(0.0, s.accuracy - s.accuracy_low), max(0.0, s.accuracy_high - s.accuracy)
        shown = "@" not in s.system or family == "random"  # a curve's points: its line is named
        axis.errorbar([s.cloud_tokens_per_question], [s.accuracy], yerr=[[low], [high]],
                      capsize=3, label=s.system if shown else None, alpha=1.0 if shown else 0.35,
                      fmt=MARKERS[models.index(_model_of(s.system)) % len(MARKERS)],
                      color=FAMILY_COLOURS.get(family, "#495057"))  # fmt: skip
    axis.set(xlabel="cloud tokens per question", ylabel="accuracy", ylim=(-0.02, 1.02),
             title=title)  # fmt: skip
    axis.set_xlim(left=-1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _model_of(name: str) -> str:
    return name.rsplit(":", 1)[1] if ":" in name else ""

"""What ``relay eval`` concludes and writes: envelopes, the headline, selectivity, the files.

The headline compares each SLM's ``learned`` system at its own cloud tokens
per question with the entropy envelope of the same SLM, with every other
SLM's entropy envelope and with the SLM alone (paired bootstrap over
questions, :mod:`training.compare`), then with the matched random router.
The target is ``learned`` at or above each entropy envelope (95 % lower bound
at least -3 points) and above its SLM alone.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from training.compare import Selectivity, against_envelope, selectivity
from training.envelope import Envelope, OperatingPoint
from training.evaluate import QuestionResult
from training.report import SystemSummary, headline, plot, router_curve, summarise, write_csv

if TYPE_CHECKING:
    from training.eval_run import EvalPlan

__all__ = ["EvalReport", "SlmRuns", "build_report", "write_report"]

TOLERANCE = -3.0
"""Points: the lower bound at which ``learned`` still counts as level with an envelope."""
ROUTER_PS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
NEVER = "never called (an SLM not trained to call): nothing to compare at its cost"

Rows = list[QuestionResult]


@dataclass
class SlmRuns:
    """One SLM's systems (``tag`` follows their names when several SLMs are compared)."""

    name: str
    tag: str
    shown: set[str] = field(default_factory=set)
    alone: Rows = field(default_factory=list)
    cloud: Rows = field(default_factory=list)
    learned: Rows = field(default_factory=list)
    learned_curve: dict[str, Rows] = field(default_factory=dict)
    entropy: dict[str, Rows] = field(default_factory=dict)
    router: Rows = field(default_factory=list)
    router_p: float | None = None

    def entropy_family(self) -> dict[str, Rows]:
        """The entropy systems with the SLM alone (the zero-cost point)."""
        return {"slm": self.alone, **self.entropy} if self.alone else dict(self.entropy)


@dataclass
class EvalReport:
    """Everything the report shows."""

    summaries: list[SystemSummary]
    curves: dict[str, list[OperatingPoint]]
    headlines: dict[str, list[str]]
    selectivity: list[Selectivity]
    no_headline: str = ""


def build_report(runs: list[SlmRuns], *, seed: int = 0) -> EvalReport:
    """Summaries, envelopes, headlines and selectivity of every SLM's runs."""
    summaries, curves, headlines, chosen = [], {}, {}, []
    for run in runs:
        for name, rows in (("slm", run.alone), ("llm", run.cloud), ("learned", run.learned)):
            if name in run.shown:
                summaries.append(summarise(name + run.tag, rows))
        summaries += [summarise(name + run.tag, rows) for name, rows in run.learned_curve.items()]
        summaries += [summarise(name + run.tag, rows) for name, rows in run.entropy.items()]
        if run.router_p is not None:
            summaries.append(summarise(f"random@p={run.router_p:.3f}{run.tag}", run.router))
            curves[f"random router{run.tag}"] = router_curve(run.alone, run.cloud, ROUTER_PS)
        if run.entropy:
            points = [_point(name, rows) for name, rows in run.entropy_family().items()]
            curves[f"entropy envelope{run.tag}"] = Envelope(points).curve()
        if run.learned and run.learned_curve and run.alone:
            family = {"slm": run.alone, "learned": run.learned, **run.learned_curve}
            curves[f"learned envelope{run.tag}"] = Envelope(
                [_point(name, rows) for name, rows in family.items()]
            ).curve()
        if run.learned and run.alone:
            called = any(r.calls for r in run.learned)
            headlines[f"learned{run.tag}"] = _headline(run, runs, seed) if called else [NEVER]
        if run.alone:
            routed = {"learned": run.learned, **run.learned_curve, **run.entropy,
                      "random": run.router}  # fmt: skip
            chosen += [selectivity(n + run.tag, rows, run.alone) for n, rows in routed.items()
                       if rows]  # fmt: skip
    missing = "" if headlines else _no_headline(runs)
    return EvalReport(summaries, curves, headlines, chosen, missing)


def _point(name: str, rows: Rows) -> OperatingPoint:
    s = summarise(name, rows)
    return OperatingPoint(s.cloud_tokens_per_question, s.accuracy, name)


def _headline(run: SlmRuns, runs: list[SlmRuns], seed: int) -> list[str]:
    """Learned against each entropy envelope, the SLM alone and the random router."""
    lines = []
    references = [(f"its own entropy envelope ({run.name})", run)] if run.entropy else []
    references += [(f"{other.name}'s entropy envelope", other) for other in runs
                   if other is not run and other.entropy]  # fmt: skip
    for label, other in references:
        found = against_envelope(run.learned, other.entropy_family(), reference=label, seed=seed)
        if found is not None:
            level = found.low is not None and found.low >= TOLERANCE
            lines.append(f"{found.statement}: {'level or better' if level else 'below'}")
    alone = against_envelope(run.learned, {"slm": run.alone}, reference="the SLM alone", seed=seed)
    if alone is not None:
        above = alone.low is not None and alone.low > 0
        lines.append(f"{alone.statement}: {'above' if above else 'not clearly above'}")
    if run.cloud:
        router = headline(run.learned, run.alone, run.cloud, seed=seed)
        lines.append(f"against the random router: {router.statement}")
    return lines


def _no_headline(runs: list[SlmRuns]) -> str:
    """Why the report has no headline, in one sentence."""
    if not any(run.learned for run in runs):
        return ("No headline: it compares the learned system with the entropy envelope and the "
                "random router at its cloud cost, and learned was not among the systems "
                "(see --systems).")  # fmt: skip
    return ("No headline: it needs the SLM alone (system slm) to place the learned system; "
            "no question was answered alone.")  # fmt: skip


def write_report(plan: EvalPlan, report: EvalReport) -> None:
    """``summary.csv``, ``accuracy_vs_cloud_tokens.png`` and ``report.md`` in ``plan.out``."""
    if not report.summaries:
        return
    write_csv(report.summaries, plan.out / "summary.csv")
    title = f"{len(plan.problems)} questions, {', '.join(s.stem for s in plan.slms)}"
    plot(report.summaries, report.curves, plan.out / "accuracy_vs_cloud_tokens.png", title=title)
    (plan.out / "report.md").write_text(_markdown(plan, report))


def _markdown(plan: EvalPlan, report: EvalReport) -> str:
    lines = ["# relayllm evaluation", "",
             "| system | accuracy (95 % CI) | cloud tokens/q | calls/q | call ratio | $/q | tok/s "
             "| p50 s | p95 s | fallbacks | malformed commands |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in report.summaries:
        lines.append(
            f"| {s.system} | {s.accuracy:.1%} ({s.accuracy_low:.1%} to {s.accuracy_high:.1%}) "
            f"| {s.cloud_tokens_per_question:.1f} | {s.calls_per_question:.2f} "
            f"| {s.call_ratio:.2%} | {s.usd_per_question:.5f} | {s.tokens_per_s:.0f} "
            f"| {s.latency_p50_s:.2f} | {s.latency_p95_s:.2f} | {s.fallbacks} "
            f"| {s.malformed_commands} |"
        )
    lines += ["", "## Headline", ""]
    for system, statements in report.headlines.items():
        lines += [f"- {system}: {statement}" for statement in statements]
    if report.no_headline:
        lines.append(report.no_headline)
    lines += _selectivity(report.selectivity)
    lines += ["", "## Envelopes", ""]
    for name, corners in report.curves.items():
        shown = ", ".join(f"{p.cost:.1f} → {p.accuracy:.1%}" for p in corners)
        lines.append(f"- {name}: {shown}")
    return "\n".join([*lines, *_settings(plan)])


def _selectivity(rows: list[Selectivity]) -> list[str]:
    if not rows:
        return []

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    lines = ["", "## Where each system calls", "",
             "| system | calls where the SLM fails alone | where it solves alone | AUROC |",
             "|---|---|---|---|"]  # fmt: skip
    for s in rows:
        auroc = "n/a" if s.auroc is None else f"{s.auroc:.2f}"
        lines.append(f"| {s.system} | {pct(s.calls_where_fails_alone)} "
                     f"| {pct(s.calls_where_solves_alone)} | {auroc} |")  # fmt: skip
    return lines


def _settings(plan: EvalPlan) -> list[str]:
    import importlib.metadata

    versions = {}
    for name in ("relayllm", "llama-cpp-python", "math-verify"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    grid = f"entropy thresholds fitted per SLM at call ratios {plan.entropy_ratios}"
    if plan.thresholds is not None:
        grid = f"entropy thresholds {plan.thresholds} (by hand)"
    return ["", "## Settings", "", f"- questions: {len(plan.problems)}, seed {plan.seed}",
            f"- SLM: {', '.join(str(s) for s in plan.slms)}",
            f"- temperature {plan.temperature}, max tokens {plan.max_tokens}, "
            f"calls per answer {plan.max_calls}, {grid}, call sizes {plan.call_sizes}",
            *[f"- {key}: {value}" for key, value in plan.settings.items()],
            f"- machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
            f"Python {platform.python_version()}",
            f"- packages: {', '.join(f'{k} {v}' for k, v in versions.items())}", ""]  # fmt: skip

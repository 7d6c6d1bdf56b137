"""``relay eval``: every system on the same questions and seeds, a report and a plot.

Systems (``--systems``): ``slm`` (the SLM alone), ``llm`` (the cloud answers the
whole query), ``learned`` (the SLM's own commands), ``entropy`` (the training-free
policy, swept over thresholds), ``random`` (the paper's query-level router with
its routing chance matched to the learned system's measured call ratio; its
whole accuracy-against-ratio curve follows from the ``slm`` and ``llm`` runs).
Each question has one seed, the same in every system and run.

Results go to ``results.jsonl`` as they come (a rerun skips what is done),
then ``summary.csv``, ``report.md`` and ``accuracy_vs_call_ratio.png``. The
headline compares ``learned`` with the matched ``random`` router; without one,
the report says why.
"""

from __future__ import annotations

import json
import platform
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edge.clouds.client import CloudClient
from edge.clouds.fallback import OfflineCloud
from edge.llama import LlamaModel
from edge.loop import RelayLoop
from edge.policies import (
    CallPolicy,
    CloudOnlyPolicy,
    EntropyPolicy,
    LearnedPolicy,
    NeverPolicy,
    RandomRouter,
)
from edge.relay import RelayLimits
from protocol.calls import malformed_commands
from protocol.sampling import SamplingParams
from training.evaluate import QuestionResult, answer_problems
from training.problems import Problem
from training.report import (
    SystemSummary,
    headline,
    matched_p,
    plot,
    router_curve,
    summarise,
    write_csv,
)

__all__ = ["EvalPlan", "run_evaluation", "system_count"]

SYSTEMS = ("slm", "llm", "learned", "entropy", "random")
ROUTER_PS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


@dataclass
class EvalPlan:
    """What one ``relay eval`` run does."""

    problems: list[Problem]
    slms: list[Path]
    cloud: Callable[[], CloudClient]
    out: Path
    systems: tuple[str, ...] = SYSTEMS
    seed: int = 0
    concurrency: int = 1
    max_tokens: int = 512
    max_calls: int = 4
    temperature: float = 0.7
    thresholds: tuple[float, ...] = (2.0, 3.0, 4.0, 5.0)
    n_threads: int | None = None
    settings: dict[str, object] = field(default_factory=dict)


class Results:
    """``results.jsonl``: what is done survives a stopped run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.rows: dict[tuple[str, str], QuestionResult] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = _row(json.loads(line))
                    self.rows[(row.system, row.id)] = row

    def add(self, row: QuestionResult) -> None:
        with self._lock:
            self.rows[(row.system, row.id)] = row
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(row.to_json()) + "\n")

    def of(self, system: str, problems: Sequence[Problem]) -> list[QuestionResult]:
        return [self.rows[(system, p.id)] for p in problems if (system, p.id) in self.rows]


def _row(data: dict[str, object]) -> QuestionResult:
    """A ``results.jsonl`` line; one written before commands were counted counts its answer."""
    data.setdefault("malformed_commands", malformed_commands(str(data["answer"])))
    return QuestionResult(**data)  # type: ignore[arg-type]


def system_count(plan: EvalPlan) -> int:
    """How many systems the plan answers with, those run only for ``random`` included."""
    alone = sum(_wants(plan, name, "random") for name in ("slm", "llm", "learned"))
    sweep = len(plan.thresholds) if "entropy" in plan.systems else 0
    return (alone + sweep + ("random" in plan.systems)) * len(plan.slms)


def run_evaluation(
    plan: EvalPlan,
    *,
    progress: Callable[[str, list[QuestionResult], int], None] | None = None,
    finished: Callable[[SystemSummary, int, int], None] | None = None,
) -> dict[str, object]:
    """Run the plan; return the summaries, the router curve and the headline.

    ``progress`` hears of every answer, ``finished`` of every system as it ends (its summary,
    how many systems have ended, and :func:`system_count`).
    """
    plan.out.mkdir(parents=True, exist_ok=True)
    results = Results(plan.out / "results.jsonl")
    summaries: list[SystemSummary] = []
    curves: dict[str, list[tuple[float, float, float]]] = {}
    headlines = {}
    ended: list[str] = []
    for slm in plan.slms:
        tag = f":{slm.stem}" if len(plan.slms) > 1 else ""

        def run(name: str, policy: CallPolicy, offline: bool = False) -> list[QuestionResult]:
            system = name + tag  # noqa: B023 - read at once, inside this iteration
            todo = [p for p in plan.problems if (system, p.id) not in results.rows]
            _answer(plan, slm, system, policy, offline, todo, results, progress)  # noqa: B023
            rows = results.of(system, plan.problems)
            ended.append(system)
            if finished is not None:
                finished(summarise(system, rows), len(ended), system_count(plan))
            return rows

        alone = run("slm", NeverPolicy(), offline=True) if _wants(plan, "slm", "random") else []
        cloud = run("llm", CloudOnlyPolicy()) if _wants(plan, "llm", "random") else []
        learned = run("learned", LearnedPolicy()) if _wants(plan, "learned", "random") else []
        for name, rows in (("slm", alone), ("llm", cloud), ("learned", learned)):
            if name in plan.systems:
                summaries.append(summarise(name + tag, rows))
        if "entropy" in plan.systems:
            sweep = []
            for threshold in plan.thresholds:
                rows = run(f"entropy@{threshold:g}", EntropyPolicy(threshold, 16))
                sweep.append(summarise(f"entropy@{threshold:g}{tag}", rows))
            summaries += sweep
            curves[f"entropy sweep{tag}"] = [(0, s.accuracy, s.call_ratio) for s in sweep]
        if "random" in plan.systems and alone and cloud:
            target = summarise("learned", learned).call_ratio
            p = matched_p(alone, cloud, target)
            router = summarise(f"random@p={p:.3f}{tag}", run(f"random@p={p:.3f}", RandomRouter(p)))
            summaries.append(router)
            curves[f"random router{tag}"] = router_curve(alone, cloud, ROUTER_PS)
            headlines[f"learned{tag}"] = headline(learned, alone, cloud, seed=plan.seed)
    missing = "" if headlines else _no_headline(plan)
    report = {"summaries": summaries, "curves": curves, "headlines": headlines,
              "no_headline": missing}  # fmt: skip
    _write(plan, report)
    return report


def _no_headline(plan: EvalPlan) -> str:
    """Why the report has no headline, in one sentence."""
    if "random" not in plan.systems:
        return ("No headline: it compares the learned system with the random router at the same "
                "call ratio, and random was not among the systems (see --systems).")  # fmt: skip
    return "No headline: no question was answered, so no call ratio could be matched."


def _wants(plan: EvalPlan, *names: str) -> bool:
    return any(name in plan.systems for name in names)


def _answer(
    plan: EvalPlan,
    slm: Path,
    system: str,
    policy: CallPolicy,
    offline: bool,
    problems: list[Problem],
    results: Results,
    progress: Callable[[str, list[QuestionResult], int], None] | None,
) -> None:
    if not problems:
        return
    done: list[QuestionResult] = []
    limits = RelayLimits(max_calls=plan.max_calls, max_tokens=plan.max_tokens)
    sampling = SamplingParams(temperature=plan.temperature)
    workers = min(plan.concurrency, len(problems))
    with _loops(plan, slm, policy, offline, limits, sampling, workers) as loops:

        def one(problem: Problem) -> None:
            loop = loops.get()
            try:
                for row in answer_problems(system, loop, [problem], seed=plan.seed):
                    results.add(row)
                    done.append(row)
                    if progress is not None:
                        progress(system, done, len(problems))
            finally:
                loops.put(loop)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval") as pool:
            list(pool.map(one, problems))


@contextmanager
def _loops(
    plan: EvalPlan,
    slm: Path,
    policy: CallPolicy,
    offline: bool,
    limits: RelayLimits,
    sampling: SamplingParams,
    workers: int,
) -> Iterator[queue.Queue[RelayLoop]]:
    """One relay loop (with its own copy of the SLM) per worker."""
    loops: queue.Queue[RelayLoop] = queue.Queue()
    models = [LlamaModel(slm, n_ctx=max(2048, plan.max_tokens * 3), n_threads=plan.n_threads)
              for _ in range(workers)]  # fmt: skip
    try:
        for model in models:
            cloud = OfflineCloud() if offline else plan.cloud()
            loops.put(RelayLoop(model, cloud, policy, limits=limits, sampling=sampling))
        yield loops
    finally:
        for model in models:
            model.close()


def _write(plan: EvalPlan, report: dict[str, object]) -> None:
    summaries: list[SystemSummary] = report["summaries"]  # type: ignore[assignment]
    if not summaries:
        return
    write_csv(summaries, plan.out / "summary.csv")
    title = f"{len(plan.problems)} questions, {', '.join(s.stem for s in plan.slms)}"
    curves: dict[str, list[tuple[float, float, float]]] = report["curves"]  # type: ignore[assignment]
    plot(summaries, curves, plan.out / "accuracy_vs_call_ratio.png", title=title)
    (plan.out / "report.md").write_text(_markdown(plan, report))


def _markdown(plan: EvalPlan, report: dict[str, object]) -> str:
    import importlib.metadata

    summaries: list[SystemSummary] = report["summaries"]  # type: ignore[assignment]
    lines = ["# relayllm evaluation", "", "| system | accuracy (95 % CI) | call ratio | calls/q "
             "| cloud tokens/q | $/q | tok/s | p50 s | p95 s | fallbacks | malformed commands |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in summaries:
        lines.append(
            f"| {s.system} | {s.accuracy:.1%} ({s.accuracy_low:.1%} to {s.accuracy_high:.1%}) "
            f"| {s.call_ratio:.2%} | {s.calls_per_question:.2f} "
            f"| {s.cloud_tokens_per_question:.1f} "
            f"| {s.usd_per_question:.5f} | {s.tokens_per_s:.0f} | {s.latency_p50_s:.2f} "
            f"| {s.latency_p95_s:.2f} | {s.fallbacks} | {s.malformed_commands} |"
        )
    lines += ["", "## Headline", ""]
    for system, line in report["headlines"].items():  # type: ignore[attr-defined]
        lines.append(f"- {system}: {line.statement}")
    if report["no_headline"]:
        lines.append(str(report["no_headline"]))
    versions = {}
    for name in ("relayllm", "llama-cpp-python", "math-verify"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    lines += ["", "## Settings", "", f"- questions: {len(plan.problems)}, seed {plan.seed}",
              f"- SLM: {', '.join(str(s) for s in plan.slms)}",
              f"- temperature {plan.temperature}, max tokens {plan.max_tokens}, "
              f"calls per answer {plan.max_calls}, entropy thresholds {plan.thresholds}",
              *[f"- {key}: {value}" for key, value in plan.settings.items()],
              f"- machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
              f"Python {platform.python_version()}",
              f"- packages: {', '.join(f'{k} {v}' for k, v in versions.items())}", ""]  # fmt: skip
    return "\n".join(lines)

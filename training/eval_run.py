"""``relay eval``: every system on the same questions and seeds, compared at equal cloud cost.

Systems (``--systems``): ``slm`` (the SLM alone), ``llm`` (the cloud answers the
whole query), ``learned`` (the SLM's own commands; traced as a curve too, with logit biases on
the first token of a command that make it call more or less), ``entropy`` (the
training-free policy as a curve: thresholds fitted for the SLM under test at
several call ratios, each with every call size N; :mod:`training.entropy_grid`),
``random`` (the paper's query-level router, its routing chance matched to the
learned system's cloud tokens per question). Each question has one seed, the
same in every system and run.

The cost of a system is the cloud tokens it used per question. Results go to
``results.jsonl`` as they come (a rerun skips what is done; the fitted grid is
kept in ``entropy_grid.json``), then ``summary.csv``, ``report.md`` and
``accuracy_vs_cloud_tokens.png`` (:mod:`training.eval_report`).
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edge.clouds.fallback import OfflineCloud
from edge.core.cloud import CloudClient
from edge.core.loop import RelayLoop
from edge.core.policies import (
    QUIET_BIAS,
    CallPolicy,
    CloudOnlyPolicy,
    EntropyPolicy,
    LearnedPolicy,
    NeverPolicy,
    RandomRouter,
    quiet_commands,
)
from edge.core.relay import RelayLimits
from edge.llama import LlamaModel
from protocol.sampling import SamplingParams
from training.entropy_grid import EntropySetting, entropy_grid, fixed_grid
from training.eval_report import EvalReport, SlmRuns, build_report, write_report
from training.eval_results import Results
from training.evaluate import QuestionResult, answer_problems
from training.problems import Problem
from training.report import SystemSummary, matched_p, summarise

__all__ = ["EvalPlan", "Results", "run_evaluation", "system_count"]

SYSTEMS = ("slm", "llm", "learned", "entropy", "random")
ENTROPY_RATIOS = (0.03, 0.08, 0.15, 0.25, 0.4)
"""Call ratios the entropy thresholds are fitted at, by default."""
CALL_SIZES = (8, 16, 32)
"""Call sizes N of the entropy systems, by default."""
LEARNED_BIASES = (-3.0, 3.0)
"""Logit biases on the command's first token that trace ``learned`` as a curve, by default."""

Bias = tuple[tuple[int, float], ...]
Progress = Callable[[str, list[QuestionResult], int], None]
Finished = Callable[[SystemSummary, int, int], None]


@dataclass
class EvalPlan:
    """What one ``relay eval`` run does; ``thresholds`` fixes the entropy grid by hand."""

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
    thresholds: tuple[float, ...] | None = None
    entropy_ratios: tuple[float, ...] = ENTROPY_RATIOS
    call_sizes: tuple[int, ...] = CALL_SIZES
    learned_biases: tuple[float, ...] = LEARNED_BIASES
    n_threads: int | None = None
    settings: dict[str, object] = field(default_factory=dict)

    def tag(self, slm: Path) -> str:
        """What follows a system's name when several SLMs are compared (``:stem``)."""
        return f":{slm.stem}" if len(self.slms) > 1 else ""


def system_count(plan: EvalPlan, grids: dict[Path, list[EntropySetting]]) -> int:
    """How many systems the plan answers with, those run only for ``random`` included."""
    alone = sum(_wants(plan, name, "random") for name in ("slm", "llm", "learned"))
    alone += len(plan.learned_biases) if "learned" in plan.systems else 0
    sweeps = sum(len(grids.get(slm, [])) for slm in plan.slms)
    return (alone + ("random" in plan.systems)) * len(plan.slms) + sweeps


def run_evaluation(
    plan: EvalPlan, *, progress: Progress | None = None, finished: Finished | None = None
) -> EvalReport:
    """Run the plan; return the report (also written to ``plan.out``).

    ``progress`` hears of every answer, ``finished`` of every system as it ends (its summary,
    how many systems have ended, and :func:`system_count`).
    """
    plan.out.mkdir(parents=True, exist_ok=True)
    results = Results(plan.out / "results.jsonl")
    grids = _grids(plan) if "entropy" in plan.systems else {}
    total, ended = system_count(plan, grids), []

    def run(
        slm: Path, name: str, policy: CallPolicy, offline: bool = False, bias: Bias = ()
    ) -> list[QuestionResult]:
        system = name + plan.tag(slm)
        todo = [p for p in plan.problems if (system, p.id) not in results.rows]
        sampling = SamplingParams(temperature=plan.temperature, logit_bias=bias)
        _answer(plan, slm, system, policy, offline, todo, results, progress, sampling)
        rows = results.of(system, plan.problems)
        ended.append(system)
        if finished is not None:
            finished(summarise(system, rows), len(ended), total)
        return rows

    runs = [_systems_of(plan, slm, grids.get(slm, []), run) for slm in plan.slms]
    report = build_report(runs, seed=plan.seed)
    write_report(plan, report)
    return report


def _systems_of(
    plan: EvalPlan, slm: Path, grid: list[EntropySetting], run: Callable[..., list[QuestionResult]]
) -> SlmRuns:
    """Every system of one SLM, answered by ``run`` (the router needs slm, llm and learned).

    The systems that ignore the SLM's own commands (alone, entropy, the router) run with
    them suppressed (:func:`quiet_commands`), so a trained SLM is not charged for commands
    that go nowhere."""
    wants = {name: _wants(plan, name, "random") for name in ("slm", "llm", "learned")}
    one = SlmRuns(slm.stem, plan.tag(slm), shown=set(plan.systems))
    quiet = command_biases(slm, QUIET_BIAS)
    one.alone = run(slm, "slm", NeverPolicy(), True, quiet) if wants["slm"] else []
    one.cloud = run(slm, "llm", CloudOnlyPolicy()) if wants["llm"] else []
    one.learned = run(slm, "learned", LearnedPolicy()) if wants["learned"] else []
    if "learned" in plan.systems:
        for bias in plan.learned_biases:
            name = f"learned@bias={bias:+g}"
            one.learned_curve[name] = run(
                slm, name, LearnedPolicy(), bias=command_biases(slm, bias)
            )
    for setting in grid:
        policy = EntropyPolicy(setting.threshold, setting.n)
        one.entropy[setting.name] = run(slm, setting.name, policy, bias=quiet)
    if "random" in plan.systems and one.alone and one.cloud:
        cost = sum(r.llm_tokens for r in one.learned) / max(1, len(one.learned))
        one.router_p = matched_p(one.alone, one.cloud, cost)
        one.router = run(
            slm, f"random@p={one.router_p:.3f}", RandomRouter(one.router_p), bias=quiet
        )
    return one


def command_biases(slm: Path, bias: float) -> Bias:
    """``bias`` on the tokens ``slm`` starts a command with (see :func:`quiet_commands`)."""
    model = LlamaModel(slm, n_ctx=256, n_threads=1)
    try:
        return tuple((token, bias) for token, _ in quiet_commands(model))
    finally:
        model.close()


def _grids(plan: EvalPlan) -> dict[Path, list[EntropySetting]]:
    """Each SLM's entropy settings: by hand, kept from an earlier run, or fitted now."""
    if plan.thresholds is not None:
        return {slm: fixed_grid(plan.thresholds, plan.call_sizes) for slm in plan.slms}
    path = plan.out / "entropy_grid.json"
    kept = json.loads(path.read_text()) if path.is_file() else {}
    key = json.dumps([plan.entropy_ratios, plan.call_sizes, plan.max_calls])
    grids = {}
    for slm in plan.slms:
        entry = kept.get(str(slm), {})
        if entry.get("key") != key:
            settings = entropy_grid(slm, ratios=plan.entropy_ratios, sizes=plan.call_sizes,
                                    max_calls=plan.max_calls, temperature=plan.temperature,
                                    n_threads=plan.n_threads)  # fmt: skip
            entry = {"key": key, "settings": [[s.threshold, s.n] for s in settings]}
            kept[str(slm)] = entry
        grids[slm] = [EntropySetting(t, n) for t, n in entry["settings"]]
    path.write_text(json.dumps(kept, indent=2) + "\n")
    return grids


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
    progress: Progress | None,
    sampling: SamplingParams,
) -> None:
    if not problems:
        return
    done: list[QuestionResult] = []
    limits = RelayLimits(max_calls=plan.max_calls, max_tokens=plan.max_tokens)
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

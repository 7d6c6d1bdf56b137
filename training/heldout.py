"""The held-out check of a trained SLM: run by the edge runtime, as a user would run it.

The exported GGUF answers held-out problems twice through llama.cpp: alone
(``never`` policy, offline, its commands suppressed) and with its own commands
(``learned``) against the cloud; then the same for the unseen split (story families and phrasings
training never saw), reported apart. Reported: both accuracies, cloud tokens
per question, how often the learned SLM called, the call rate on problems it
fails alone versus solves alone and the AUROC of calling for failing
(training should make the first higher), the cloud's share of tokens, and
answers with malformed commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.clouds.fallback import OfflineCloud
from edge.core.cloud import CloudClient
from edge.core.loop import RelayLoop
from edge.core.policies import LearnedPolicy, NeverPolicy, quiet_commands
from edge.core.relay import RelayLimits
from edge.llama import LlamaModel
from protocol.sampling import SamplingParams
from training.compare import selectivity
from training.config import RunConfig
from training.evaluate import QuestionResult, answer_problems
from training.problems import Problem

__all__ = ["heldout_check"]

EVAL_CALLS = 4
"""Calls per answer at evaluation: the method's 5 SLM turns."""


def heldout_check(
    gguf: Path,
    problems: Sequence[Problem],
    cloud: CloudClient,
    config: RunConfig,
    *,
    unseen: Sequence[Problem] = (),
) -> dict[str, Any]:
    """Both runs of ``problems`` (and of ``unseen`` ones) on ``gguf``, summarised."""
    model = LlamaModel(gguf, n_ctx=2048, n_threads=config.threads)
    limits = RelayLimits(max_calls=EVAL_CALLS, max_tokens=config.grpo.max_tokens * 2)
    sampling = SamplingParams(temperature=0.7)
    quiet = SamplingParams(temperature=0.7, logit_bias=quiet_commands(model))
    loops = {"slm": RelayLoop(model, OfflineCloud(), NeverPolicy(), limits=limits,
                              sampling=quiet),
             "learned": RelayLoop(model, cloud, LearnedPolicy(), limits=limits,
                                  sampling=sampling)}  # fmt: skip
    try:
        groups = (("held-out", problems), ("unseen", unseen))
        runs = {name: {system: list(answer_problems(system, loop, group, seed=config.seed))
                       for system, loop in loops.items()}
                for name, group in groups if group}  # fmt: skip
    finally:
        model.close()
    summary = summarise(runs["held-out"]["slm"], runs["held-out"]["learned"], "held-out")
    if "unseen" in runs:
        other = summarise(runs["unseen"]["slm"], runs["unseen"]["learned"], "unseen")
        summary["lines"] += other.pop("lines")
        summary["unseen"] = other
    return summary


def summarise(
    alone: list[QuestionResult], learned: list[QuestionResult], label: str = "held-out"
) -> dict[str, Any]:
    """Accuracies, call rates and selectivity of one problem set, with lines to print."""
    picked = selectivity("learned", learned, alone)
    tokens = sum(r.slm_tokens + r.llm_tokens for r in learned)
    summary: dict[str, Any] = {
        "questions": len(learned),
        "accuracy_slm_alone": sum(r.correct for r in alone) / len(alone),
        "accuracy_learned": sum(r.correct for r in learned) / len(learned),
        "call_rate": sum(r.calls > 0 for r in learned) / len(learned),
        "call_rate_where_slm_fails_alone": picked.calls_where_fails_alone,
        "call_rate_where_slm_solves_alone": picked.calls_where_solves_alone,
        "auroc_called_vs_fails_alone": picked.auroc,
        "call_ratio": sum(r.llm_tokens for r in learned) / tokens if tokens else 0.0,
        "cloud_tokens_per_question": sum(r.llm_tokens for r in learned) / len(learned),
        "answers_with_malformed_commands": sum(r.malformed_commands > 0 for r in learned),
    }

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    figures = {key: pct(value) for key, value in summary.items() if key.endswith(("_alone",
               "_learned", "rate", "ratio"))}  # fmt: skip
    auroc = "n/a" if picked.auroc is None else f"{picked.auroc:.2f}"
    summary["lines"] = [
        f"{label}, {len(learned)} problems, edge runtime: accuracy alone "
        f"{figures['accuracy_slm_alone']}, with its own calls {figures['accuracy_learned']} "
        f"at {summary['cloud_tokens_per_question']:.1f} cloud tokens per question",
        f"calls in {figures['call_rate']} of answers ({figures['call_ratio']} of tokens); "
        f"where it fails alone {figures['call_rate_where_slm_fails_alone']}, "
        f"where it solves alone {figures['call_rate_where_slm_solves_alone']} (AUROC {auroc})",
    ]
    return summary

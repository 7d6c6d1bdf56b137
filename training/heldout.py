"""The held-out check of a trained SLM: run by the edge runtime, as a user would run it.

The exported GGUF answers held-out problems twice through llama.cpp: alone
(``never`` policy, offline) and with its own commands (``learned``) against the
cloud. Reported: both accuracies, how often the learned SLM called, the call
rate on problems it fails alone versus solves alone (training should make the
first higher), the cloud's share of tokens, and answers with malformed commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.clouds.client import CloudClient
from edge.clouds.fallback import OfflineCloud
from edge.llama import LlamaModel
from edge.loop import RelayLoop
from edge.policies import LearnedPolicy, NeverPolicy
from edge.relay import RelayLimits
from protocol.sampling import SamplingParams
from training.config import RunConfig
from training.evaluate import QuestionResult, answer_problems
from training.problems import Problem

__all__ = ["heldout_check"]

EVAL_CALLS = 4
"""Calls per answer at evaluation: the method's 5 SLM turns."""


def heldout_check(
    gguf: Path, problems: Sequence[Problem], cloud: CloudClient, config: RunConfig
) -> dict[str, Any]:
    """Both runs of ``problems`` on ``gguf``, summarised (see the module docstring)."""
    model = LlamaModel(gguf, n_ctx=2048, n_threads=config.threads)
    limits = RelayLimits(max_calls=EVAL_CALLS, max_tokens=config.grpo.max_tokens * 2)
    sampling = SamplingParams(temperature=0.7)
    try:
        alone = list(answer_problems("slm", RelayLoop(model, OfflineCloud(), NeverPolicy(),
                                                      limits=limits, sampling=sampling),
                                     problems, seed=config.seed))  # fmt: skip
        learned = list(answer_problems("learned", RelayLoop(model, cloud, LearnedPolicy(),
                                                            limits=limits, sampling=sampling),
                                       problems, seed=config.seed))  # fmt: skip
    finally:
        model.close()
    return summarise(alone, learned)


def summarise(alone: list[QuestionResult], learned: list[QuestionResult]) -> dict[str, Any]:
    solved = {r.id for r in alone if r.correct}
    failed_alone = [r for r in learned if r.id not in solved]
    solved_alone = [r for r in learned if r.id in solved]

    def rate(rows: list[QuestionResult]) -> float | None:
        return sum(r.calls > 0 for r in rows) / len(rows) if rows else None

    tokens = sum(r.slm_tokens + r.llm_tokens for r in learned)
    summary: dict[str, Any] = {
        "questions": len(learned),
        "accuracy_slm_alone": sum(r.correct for r in alone) / len(alone),
        "accuracy_learned": sum(r.correct for r in learned) / len(learned),
        "call_rate": rate(learned),
        "call_rate_where_slm_fails_alone": rate(failed_alone),
        "call_rate_where_slm_solves_alone": rate(solved_alone),
        "call_ratio": sum(r.llm_tokens for r in learned) / tokens if tokens else 0.0,
        "answers_with_malformed_commands": sum(r.malformed_commands > 0 for r in learned),
    }

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    figures = {key: pct(value) for key, value in summary.items() if key.endswith(("_alone",
               "_learned", "rate", "ratio"))}  # fmt: skip
    summary["lines"] = [
        f"held-out, {len(learned)} problems, edge runtime: accuracy alone "
        f"{figures['accuracy_slm_alone']}, with its own calls {figures['accuracy_learned']}",
        f"calls in {figures['call_rate']} of answers ({figures['call_ratio']} of tokens); "
        f"where it fails alone {figures['call_rate_where_slm_fails_alone']}, "
        f"where it solves alone {figures['call_rate_where_slm_solves_alone']}",
    ]
    return summary

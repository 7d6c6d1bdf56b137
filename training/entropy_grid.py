"""The entropy policy's operating points for one SLM: thresholds fitted at several call ratios.

An entropy threshold means different things for different SLMs (a trained
SLM is far more certain than its base), so fixed thresholds do not sweep the
same range of costs. :func:`entropy_grid` measures the SLM's own next-token
entropies on built-in problems of the *training* distribution (never the
questions under test) and fits, for each call size ``n``, the threshold at
each target call ratio, as ``relay calibrate`` does for one ratio. The SLM's
own commands are suppressed there, as in the entropy systems themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.app.calibration import entropy_traces, fit_threshold
from edge.core.policies import quiet_commands
from edge.core.prompt import build_prompt
from edge.llama import LlamaChat, LlamaModel
from protocol.sampling import SamplingParams
from training.problems import generate, messages_for

__all__ = ["CALIBRATION_SEED", "EntropySetting", "entropy_grid", "fixed_grid"]

CALIBRATION_SEED = 7_919
"""Seed of the built-in problems the grid is fitted on (never the evaluation's questions)."""


@dataclass(frozen=True)
class EntropySetting:
    """One entropy system: call when the entropy passes ``threshold``, for ``n`` tokens."""

    threshold: float
    n: int

    @property
    def name(self) -> str:
        return f"entropy@{self.threshold:g}/{self.n}"


def entropy_grid(
    slm: Path,
    *,
    ratios: Sequence[float],
    sizes: Sequence[int],
    max_calls: int,
    prompts: int = 24,
    tokens: int = 128,
    temperature: float = 0.7,
    n_threads: int | None = None,
) -> list[EntropySetting]:
    """Thresholds for ``slm`` at each of ``ratios`` and call size in ``sizes``, deduplicated."""
    model = LlamaModel(slm, n_ctx=2048, n_threads=n_threads)
    try:
        chat = LlamaChat(model)
        problems = generate(prompts, seed=CALIBRATION_SEED, levels=(1, 2, 3))
        rendered = [build_prompt(chat, messages_for(p), n_ctx=2048).tokens for p in problems]
        sampling = SamplingParams(
            temperature=temperature, seed=CALIBRATION_SEED, logit_bias=quiet_commands(model)
        )  # as its systems run
        traces = entropy_traces(model, rendered, tokens=tokens, sampling=sampling)
    finally:
        model.close()
    settings = {
        EntropySetting(fit_threshold(traces, ratio, n=n, max_calls=max_calls)[0], n): None
        for n in sizes
        for ratio in ratios
    }
    return list(settings)


def fixed_grid(thresholds: Sequence[float], sizes: Sequence[int]) -> list[EntropySetting]:
    """Every threshold with every call size (``--thresholds`` given by hand)."""
    return [EntropySetting(t, n) for n in sizes for t in thresholds]

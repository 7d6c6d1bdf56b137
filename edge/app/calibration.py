"""The entropy policy's threshold, calibrated per model file.

``relay calibrate`` lets the SLM answer a small built-in prompt set alone,
records its next-token entropy before every token, and finds the threshold at
which the entropy policy would give the target call ratio (cloud tokens / all
answer tokens) on those answers: the policy is replayed on the recorded
entropies, a call taking the place of the next ``n`` SLM tokens. The result is
stored per model file, keyed by its SHA-256, in ``calibration.json`` in the
data dir; the bundled SLM ships with one measured the same way.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.sampling import SamplingParams

if TYPE_CHECKING:
    from edge.llama import LlamaModel

__all__ = [
    "BUNDLED_CALIBRATIONS",
    "PROMPTS",
    "Calibration",
    "CalibrationStore",
    "calibrate",
    "fit_threshold",
    "replayed_call_ratio",
]

PROMPTS = (
    "Tom has 3 boxes of 12 pens and gives away 7 pens. How many pens does he have left?",
    "A train travels 180 km in 2.5 hours. What is its average speed?",
    "If a shirt costs $25 after a 20% discount, what was the original price?",
    "What is 17 * 23?",
    "Sara reads 14 pages a day. How many days does she need for a 250-page book?",
    "Solve for x: 3x + 7 = 31.",
    "Explain in a few sentences why the sky is blue.",
    "Why do we have seasons on Earth?",
    "How does a vaccine train the immune system?",
    "What causes the tides?",
    "Explain what a hash table is and when to use one.",
    "Write a Python function that reverses the words of a sentence.",
    "What is the difference between a list and a tuple in Python?",
    "Summarise the plot of Romeo and Juliet in three sentences.",
    "Write a short poem about the sea at night.",
    "Give three tips for sleeping better.",
    "Who was Marie Curie and what is she known for?",
    "What is the capital of Australia, and why is it not Sydney?",
    "Translate into French: The weather is nice today, let us go for a walk.",
    "用中文介绍一下猫和狗。",
    "Name three colours and an object of each colour.",
    "How do I make a cup of tea?",
    "What are the pros and cons of working from home?",
    "Describe the water cycle step by step.",
)
"""Questions of the kinds a relay answers: word problems, explanations, code, writing."""


@dataclass(frozen=True)
class Calibration:
    """An entropy threshold for one model file, and how it was found."""

    threshold: float
    call_ratio: float  # the target
    replayed_call_ratio: float  # what the threshold gives on the recorded answers
    call_tokens: int
    prompts: int
    tokens: int
    model: str  # file name
    sha256: str
    size: int = 0
    measured_on: str = ""


_SMOLLM2 = Calibration(  # relay calibrate, default settings, 2026-11-29
    threshold=4.686, call_ratio=0.1, replayed_call_ratio=0.0999, call_tokens=16, prompts=24,
    tokens=2503, model="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98362432,
    measured_on="2026-11-29",
)  # fmt: skip
BUNDLED_CALIBRATIONS: dict[str, Calibration] = {_SMOLLM2.sha256: _SMOLLM2}
"""Calibrations shipped with relayllm (the bundled SLM's), by model SHA-256."""


def replayed_call_ratio(
    traces: Sequence[Sequence[float]], threshold: float, *, n: int, max_calls: int
) -> float:
    """The call ratio the entropy policy would give on answers with these entropies.

    As in the relay: a call when the entropy passes ``threshold`` (once the SLM
    has written ``n`` tokens since the last call, at most ``max_calls`` per
    answer); the cloud's ``n`` tokens take the place of the SLM's next ``n``.
    """
    cloud = local = 0
    for trace in traces:
        calls, since, position = 0, n, 0
        while position < len(trace):
            if calls < max_calls and since >= n and trace[position] > threshold:
                calls, since = calls + 1, 0
                cloud += min(n, len(trace) - position)
                position += n
            else:
                local, since, position = local + 1, since + 1, position + 1
    return cloud / (cloud + local) if cloud + local else 0.0


def fit_threshold(
    traces: Sequence[Sequence[float]], target: float, *, n: int, max_calls: int
) -> tuple[float, float]:
    """The threshold whose replayed call ratio is nearest ``target``, and that ratio.

    The ratio falls as the threshold rises, so the candidates (midpoints between
    the recorded entropies) are searched by bisection.
    """
    values = sorted({round(e, 4) for trace in traces for e in trace})
    if not values:
        raise ValueError("no entropies were recorded")
    candidates = [values[0] / 2] + [(a + b) / 2 for a, b in itertools.pairwise(values)]
    candidates.append(values[-1] + 1.0)

    def ratio(i: int) -> float:
        return replayed_call_ratio(traces, candidates[i], n=n, max_calls=max_calls)

    low, high = 0, len(candidates) - 1  # ratio(low) is the largest, ratio(high) 0
    while high - low > 1:
        middle = (low + high) // 2
        if ratio(middle) >= target:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda i: abs(ratio(i) - target))
    return round(candidates[best], 3), ratio(best)


def entropy_traces(
    model: LlamaModel,
    prompts: Sequence[Sequence[int]],
    *,
    tokens: int,
    sampling: SamplingParams,
    progress: Callable[[], None] = lambda: None,
) -> list[list[float]]:
    """The SLM's next-token entropy before each token of its own answer to each prompt
    (prompt ``i`` sampled with seed ``sampling.seed + i``)."""
    traces = []
    for index, prompt in enumerate(prompts):
        model.sync(prompt)
        sampler = model.sampler(replace(sampling, seed=(sampling.seed or 0) + index))
        trace: list[float] = []
        try:
            while len(trace) < tokens and model.n_tokens < model.n_ctx - 1:
                trace.append(model.next_token_entropy())
                token = sampler.sample()
                if model.is_end(token):
                    break
                model.eval([token])
        finally:
            sampler.close()
        traces.append(trace)
        progress()
    return traces


def calibrate(
    model: LlamaModel,
    prompts: Sequence[Sequence[int]],
    *,
    call_ratio: float = 0.1,
    call_tokens: int = 16,
    max_calls: int = 4,
    tokens: int = 128,
    sampling: SamplingParams = SamplingParams(temperature=0.7, repeat_penalty=1.1),
    progress: Callable[[], None] = lambda: None,
) -> Calibration:
    """Measure ``model`` on ``prompts`` (rendered and tokenized) with the relay's sampling
    and fit the threshold."""
    if not 0.0 < call_ratio < 1.0:
        raise ValueError(f"the call ratio must be between 0 and 1, not {call_ratio}")
    traces = entropy_traces(model, prompts, tokens=tokens, sampling=sampling, progress=progress)
    threshold, replayed = fit_threshold(traces, call_ratio, n=call_tokens, max_calls=max_calls)
    return Calibration(
        threshold=threshold, call_ratio=call_ratio, replayed_call_ratio=round(replayed, 4),
        call_tokens=call_tokens, prompts=len(prompts), tokens=sum(map(len, traces)),
        model=model.path.name, sha256=file_sha256(model.path), size=model.path.stat().st_size,
        measured_on=datetime.now(timezone.utc).date().isoformat(),
    )  # fmt: skip


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class CalibrationStore:
    """Calibrations by model SHA-256 in one JSON file (written whole, atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Calibration]:
        try:
            raw = json.loads(self.path.read_text())
            return {sha: Calibration(**entry) for sha, entry in raw.items()}
        except (OSError, ValueError, TypeError):
            return {}

    def save(self, calibration: Calibration) -> None:
        entries = self.load() | {calibration.sha256: calibration}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(self.path.name + ".partial")
        staged.write_text(json.dumps({k: asdict(v) for k, v in entries.items()}, indent=2) + "\n")
        os.replace(staged, self.path)

    def lookup(self, model_path: Path, *, known_sha256: str | None = None) -> Calibration | None:
        """The calibration of the file at ``model_path``: the user's own, else a shipped one.

        The file is hashed only when a calibration of a file of its size exists
        (``known_sha256`` skips the hash: the bundled files are checked when pulled).
        """
        size = model_path.stat().st_size
        entries = {**BUNDLED_CALIBRATIONS, **self.load()}
        if not any(entry.size == size for entry in entries.values()):
            return None
        return entries.get(known_sha256 or file_sha256(model_path))

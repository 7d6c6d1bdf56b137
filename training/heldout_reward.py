"""The held-out reward curve of GRPO: does training raise the reward beyond its noise?

Before the first update (the warm-up model), every ``grpo.heldout_every``
steps and after the last, the current policy answers held-out prompts it
never trains on, ``group_size`` times each with the same seeds every time,
through the same rollout as training. The mean reward gets a 95 % bootstrap
interval over prompts; each point goes to ``metrics.jsonl`` under the stage
``grpo_heldout`` and onto ``training.png``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from training.metrics import MetricsLog

__all__ = ["HELDOUT_SEED", "heldout_callback", "mean_interval"]

HELDOUT_SEED = 99_991
"""The seed of every held-out rollout, so points differ by the model alone."""


def mean_interval(
    values: Sequence[float], *, rounds: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """The mean of ``values`` and its 95 % bootstrap interval."""
    if not values:
        return float("nan"), float("nan"), float("nan")
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(rounds))
    return sum(values) / len(values), means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def heldout_callback(trainer_ref: list[Any], rollout: Any, prompts: Sequence[str],
                     log: MetricsLog, *, every: int, group_size: int) -> Any:  # fmt: skip
    """A TRL callback measuring the held-out reward; ``trainer_ref[0]`` is the trainer."""
    from transformers import TrainerCallback

    from training.hf_backend import HFBatch

    repeated = [p for p in prompts for _ in range(group_size)]

    def measure(step: int) -> None:
        trainer = trainer_ref[0]
        model = trainer.accelerator.unwrap_model(trainer.model)
        batch = HFBatch(model, trainer.processing_class, n_ctx=rollout.n_ctx)
        out = rollout.rollout(batch, repeated, step=step, seed=HELDOUT_SEED)
        rewards = out["relay_reward"]
        per_prompt = [sum(rewards[i : i + group_size]) / group_size
                      for i in range(0, len(rewards), group_size)]  # fmt: skip
        mean, low, high = mean_interval(per_prompt)
        log.write("grpo_heldout", step, reward=mean, reward_low=low, reward_high=high,
                  accuracy=sum(out["correct"]) / len(out["correct"]),
                  cloud_tokens_per_answer=sum(out["cloud_tokens"]) / len(out["cloud_tokens"]),
                  prompts=len(prompts))  # fmt: skip

    class HeldoutReward(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            if not any(r["step"] == state.global_step for r in log.read("grpo_heldout")):
                measure(state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            last = state.global_step >= state.max_steps
            if last or (every and state.global_step % every == 0):
                measure(state.global_step)

    return HeldoutReward()

"""The held-out reward curve of GRPO: does training raise the reward beyond its noise?

Before the first update (the warm-up model), every ``grpo.heldout_every``
steps and after the last, the current policy answers held-out prompts it
never trains on, ``group_size`` times each with the same seeds every time,
through the same rollout as training. The mean reward gets a 95 % bootstrap
interval over prompts, and its gain over the warm-up model a paired one (the
same prompts and seeds: most of the spread between prompts cancels, so this is
the interval that says whether GRPO raised the reward); each point goes to
``metrics.jsonl`` under the stage ``grpo_heldout`` (with every prompt's mean
reward, ``per_prompt``) and onto ``training.png``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from training.metrics import MetricsLog

__all__ = ["HELDOUT_SEED", "heldout_callback", "heldout_rewards", "mean_interval", "paired_gain"]

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


def paired_gain(after: Sequence[float], before: Sequence[float]) -> tuple[float, float, float]:
    """The mean of ``after - before`` over the same prompts, and its 95 % bootstrap interval."""
    if len(after) != len(before):
        raise ValueError("paired rewards need the same prompts")
    return mean_interval([a - b for a, b in zip(after, before, strict=True)])


def heldout_rewards(
    model: Any, tokenizer: Any, rollout: Any, prompts: Sequence[str], *, group_size: int, step: int
) -> tuple[list[float], dict[str, Any]]:
    """Each prompt's mean reward over ``group_size`` seeded answers, and the rollout's output."""
    from training.hf_backend import HFBatch

    batch = HFBatch(model, tokenizer, n_ctx=rollout.n_ctx)
    repeated = [p for p in prompts for _ in range(group_size)]
    out = rollout.rollout(batch, repeated, step=step, seed=HELDOUT_SEED)
    rewards = out["relay_reward"]
    per_prompt = [sum(rewards[i : i + group_size]) / group_size
                  for i in range(0, len(rewards), group_size)]  # fmt: skip
    return per_prompt, out


def heldout_callback(trainer_ref: list[Any], rollout: Any, prompts: Sequence[str],
                     log: MetricsLog, *, every: int, group_size: int) -> Any:  # fmt: skip
    """A TRL callback measuring the held-out reward; ``trainer_ref[0]`` is the trainer."""
    from transformers import TrainerCallback

    def measure(step: int) -> None:
        trainer = trainer_ref[0]
        model = trainer.accelerator.unwrap_model(trainer.model)
        per_prompt, out = heldout_rewards(model, trainer.processing_class, rollout, prompts,
                                          group_size=group_size, step=step)  # fmt: skip
        mean, low, high = mean_interval(per_prompt)
        first = [r for r in log.read("grpo_heldout") if r["step"] == 0 and "per_prompt" in r]
        gain = paired_gain(per_prompt, first[0]["per_prompt"]) if first and step else None
        paired = dict(zip(("gain", "gain_low", "gain_high"), gain)) if gain else {}
        log.write("grpo_heldout", step, reward=mean, reward_low=low, reward_high=high,
                  accuracy=sum(out["correct"]) / len(out["correct"]),
                  cloud_tokens_per_answer=sum(out["cloud_tokens"]) / len(out["cloud_tokens"]),
                  prompts=len(prompts), per_prompt=per_prompt,
                  **paired)  # fmt: skip

    class HeldoutReward(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            if not any(r["step"] == state.global_step for r in log.read("grpo_heldout")):
                measure(state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            last = state.global_step >= state.max_steps
            if last or (every and state.global_step % every == 0):
                measure(state.global_step)

    return HeldoutReward()

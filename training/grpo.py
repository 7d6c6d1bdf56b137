"""GRPO on real relay rollouts: TRL's GRPOTrainer with the relay loop as its rollout.

:class:`RelayRollout` is the trainer's ``rollout_func``. The prompts arrive
repeated ``group_size`` times; all of them are answered together through the
edge's own relay loop (:func:`edge.core.batch.relay_batch`) on the current policy
(:class:`training.hf_backend.HFBatch`), the cloud endpoint answering the calls.
A completion is the answer's tokens exactly as at inference (the SLM's text,
its commands, the cloud's tokens) plus the end-of-turn token when the SLM
ended the answer; ``env_mask`` is 1 for the SLM's tokens and 0 for the
cloud's, so the loss never learns the cloud's text. Each answer is graded
(:func:`training.grading.grade`) and the difficulty-aware reward
(:func:`training.reward.relay_rewards`) judges it within its prompt group,
in the rollout itself: a group whose rewards are all equal has no advantage,
so its answers are masked out of the loss (``grpo.skip_uninformative``)
instead of diluting it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.core.batch import relay_batch
from edge.core.cloud import CloudClient
from edge.core.policies import CallPolicy, LearnedPolicy
from edge.core.prompt import ChatFormat, build_prompt
from edge.core.relay import RelayLimits
from protocol.calls import CALL_OPEN, parse_calls
from protocol.sampling import SamplingParams
from training.config import RunConfig
from training.grading import grade
from training.hf_backend import HFBatch
from training.metrics import MetricsLog, last_checkpoint, lora_config, trainer_args
from training.models import LoadedSLM
from training.problems import Problem, messages_for
from training.reward import AnswerCost, RewardWeights, informative_groups, relay_rewards

__all__ = ["RelayRollout", "relay_reward", "reward_weights", "train_grpo"]


def reward_weights(config: RunConfig) -> RewardWeights:
    """The reward's constants from the run's settings."""
    g = config.grpo
    return RewardWeights(g.solo_reward, g.stubborn_reward, g.format_penalty, g.cost,
                         g.token_cost, g.call_cost)  # fmt: skip


class RelayRollout:
    """Answers a batch of repeated prompts through the relay loop (a TRL ``rollout_func``)."""

    def __init__(
        self,
        chat: ChatFormat,
        cloud: CloudClient,
        answers: dict[str, str],
        config: RunConfig,
        *,
        n_ctx: int,
        metrics: MetricsLog | None = None,
        policy: CallPolicy | None = None,
    ) -> None:
        """``policy`` is the SLM's own commands (``learned``) unless another is given."""
        self.chat, self.cloud, self.answers, self.config = chat, cloud, answers, config
        self.n_ctx = n_ctx
        self.policy = policy or LearnedPolicy()
        self.weights = reward_weights(config)
        self.metrics = metrics
        self.calls = 0

    def __call__(self, prompts: Sequence[str], trainer: Any) -> dict[str, Any]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        batch = HFBatch(model, trainer.processing_class, n_ctx=self.n_ctx)
        return self.rollout(batch, prompts, step=trainer.state.global_step + 1)

    def rollout(
        self, batch: HFBatch, prompts: Sequence[str], *, step: int, seed: int | None = None
    ) -> dict[str, Any]:
        """The rollout of ``prompts`` on ``batch``: completions, masks and rewards.

        Its figures are logged under ``step``: the update they feed. ``seed`` fixes the
        answers' seeds (by default each rollout draws new ones).
        """
        settings = self.config.grpo
        relay_prompts = [
            build_prompt(self.chat, [{"role": "user", "content": p}], n_ctx=self.n_ctx)
            for p in prompts
        ]
        if seed is None:
            base = (self.config.seed * 1_000_003 + self.calls * 10_007) % 2**32
            self.calls += 1
        else:
            base = seed
        started = time.monotonic()
        records = relay_batch(
            batch,
            self.cloud,
            self.policy,
            relay_prompts,
            limits=RelayLimits(max_calls=settings.max_calls, max_tokens=settings.max_tokens),
            sampling=SamplingParams(temperature=settings.temperature),
            seeds=[(base + i) % 2**32 for i in range(len(prompts))],
        )
        elapsed = time.monotonic() - started
        completions = [[*r.tokens, *([r.end_token] if r.end_token is not None else [])]
                       for r in records]  # fmt: skip
        masks = [[*r.mask, *([1] if r.end_token is not None else [])] for r in records]
        correct = [
            grade(r.shown, self.answers.get(p, "")).correct for r, p in zip(records, prompts)
        ]
        costs = [AnswerCost(r.llm_tokens, len(r.calls), r.call_ratio) for r in records]
        malformed = [r.text.count(CALL_OPEN) - len(parse_calls(r.text)) for r in records]
        rewards = relay_rewards(correct, costs, settings.group_size, weights=self.weights,
                                malformed=malformed)  # fmt: skip
        teaching = informative_groups(rewards, settings.group_size)
        if settings.skip_uninformative:  # a group of equal rewards is left out of the loss
            masks = [m if teaching[i // settings.group_size] else [0] * len(m)
                     for i, m in enumerate(masks)]  # fmt: skip
        if self.metrics is not None:
            tokens = sum(len(c) for c in completions)
            self.metrics.write(
                "grpo", step,
                **{"relay/accuracy": sum(correct) / len(correct),
                   "relay/call_rate": sum(c.calls > 0 for c in costs) / len(costs),
                   "relay/call_ratio": sum(r.llm_tokens for r in records) / max(1, tokens),
                   "relay/cloud_tokens": sum(r.llm_tokens for r in records),
                   "relay/reward": sum(rewards) / len(rewards),
                   "relay/informative_groups": sum(teaching) / len(teaching),
                   "relay/rollout_tokens_per_s": tokens / elapsed if elapsed else 0.0},
            )  # fmt: skip
        return {
            "prompt_ids": [list(p.tokens) for p in relay_prompts],
            "completion_ids": completions,
            "logprobs": None,
            "env_mask": masks,
            "correct": correct,
            "cloud_ratio": [c.ratio for c in costs],
            "cloud_tokens": [c.cloud_tokens for c in costs],
            "relay_reward": rewards,
        }


def relay_reward() -> Any:
    """The reward function TRL calls: the rewards :class:`RelayRollout` computed per group."""

    def relay_reward(
        prompts: list[Any], completions: list[Any], relay_reward: list[float], **_: Any
    ) -> list[float]:
        return list(relay_reward)

    return relay_reward


def train_grpo(
    slm: LoadedSLM,
    problems: Sequence[Problem],
    chat: ChatFormat,
    cloud: CloudClient,
    out: Path,
    config: RunConfig,
    *,
    metrics: MetricsLog | None = None,
    n_ctx: int = 2048,
    heldout: Sequence[Problem] = (),
) -> Path:
    """Train ``slm`` with GRPO on ``problems``; return the folder of the merged model.

    With ``heldout`` problems and ``metrics``, the held-out reward is measured along the way
    (:mod:`training.heldout_reward`)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from training.sft import save_merged

    settings = config.grpo
    prompts = [messages_for(p)[0]["content"] for p in problems]
    answers = dict(zip(prompts, (p.answer for p in problems), strict=True))
    args = GRPOConfig(
        output_dir=str(out / "checkpoints"),
        learning_rate=settings.learning_rate,
        max_steps=settings.steps,
        per_device_train_batch_size=settings.group_size,
        gradient_accumulation_steps=settings.prompts_per_step,
        num_generations=settings.group_size,
        max_completion_length=settings.max_tokens + 1,
        temperature=settings.temperature,
        beta=settings.beta,
        epsilon=settings.epsilon,
        epsilon_high=settings.epsilon_high,
        remove_unused_columns=False,
        **trainer_args(config, save_steps=5),
    )
    rollout = RelayRollout(chat, cloud, answers, config, n_ctx=n_ctx, metrics=metrics)
    trainer = GRPOTrainer(
        model=slm.model,
        reward_funcs=[relay_reward()],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=slm.tokenizer,
        peft_config=lora_config(config.lora),
        rollout_func=rollout,
        callbacks=[metrics.callback("grpo")] if metrics else None,
    )
    chosen = list(heldout)[: settings.heldout_prompts]
    if chosen and metrics is not None:
        from training.heldout_reward import heldout_callback

        asked = [messages_for(p)[0]["content"] for p in chosen]
        judge = RelayRollout(chat, cloud, dict(zip(asked, (p.answer for p in chosen), strict=True)),
                             config, n_ctx=n_ctx)  # fmt: skip
        trainer.add_callback(heldout_callback([trainer], judge, asked, metrics,
                                              every=settings.heldout_every,
                                              group_size=settings.group_size))  # fmt: skip
    trainer.train(resume_from_checkpoint=last_checkpoint(out / "checkpoints"))
    return save_merged(trainer.model, slm.tokenizer, out / "model")

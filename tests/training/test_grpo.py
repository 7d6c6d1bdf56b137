"""GRPO rollouts through the shared relay loop, and one training step end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.clouds.fallback import FallbackCloud
from edge.core.loop import RelayLoop
from edge.core.policies import EntropyPolicy, NeverPolicy
from edge.core.prompt import build_prompt
from edge.core.relay import RelayLimits
from protocol.sampling import SamplingParams
from tests.training.conftest import ShortRun
from training.config import load_config
from training.grpo import RelayRollout, train_grpo
from training.hf_backend import HFBatch, HFModel
from training.hf_text import HFChat
from training.models import LoadedSLM
from training.problems import Problem, messages_for

TINY = ["grpo.steps=1", "grpo.prompts_per_step=1", "grpo.group_size=2", "grpo.max_tokens=24"]


def test_rollouts_keep_cloud_tokens_out_of_the_loss_and_match_the_edge_loop(
    hf_slm: LoadedSLM, expert_problems: tuple[list[Problem], Path], expert_cloud: FallbackCloud
) -> None:
    problems = expert_problems[0][:2]
    prompts = [messages_for(p)[0]["content"] for p in problems for _ in range(2)]
    chat = HFChat(hf_slm.tokenizer, template=hf_slm.chat_template)
    config = load_config(None, None, ["grpo.max_tokens=40", "grpo.temperature=0.9",
                                      "grpo.skip_uninformative=false"])  # fmt: skip
    policy = EntropyPolicy(threshold=1.0, n=6)  # an untrained SLM writes no commands: force calls
    rollout = RelayRollout(chat, expert_cloud, {p: "0" for p in prompts}, config, n_ctx=1024,
                           policy=policy)  # fmt: skip
    batch = HFBatch(hf_slm.model, hf_slm.tokenizer, n_ctx=1024)
    out = rollout.rollout(batch, prompts, step=0)
    assert len(out["completion_ids"]) == len(out["env_mask"]) == len(prompts)
    assert any(0 in mask for mask in out["env_mask"])
    for ids, mask, ratio in zip(out["completion_ids"], out["env_mask"], out["cloud_ratio"]):
        assert len(ids) == len(mask)  # TRL needs them the same length, exactly
        assert ratio == pytest.approx(mask.count(0) / len(ids), abs=1 / len(ids))
        cloud_text = hf_slm.tokenizer.decode([t for t, m in zip(ids, mask) if m == 0])
        assert "<call>" not in cloud_text
    # The first rollout again, alone, through RelayLoop on the same backend and seed.
    seed = config.seed * 1_000_003 % 2**32
    loop = RelayLoop(HFModel(batch), expert_cloud, policy, sampling=SamplingParams(temperature=0.9),
                     limits=RelayLimits(max_calls=2, max_tokens=40))  # fmt: skip
    prompt = build_prompt(chat, [{"role": "user", "content": prompts[0]}], n_ctx=1024)
    assert out["prompt_ids"][0] == list(prompt.tokens)
    list(loop.run(prompt, seed=seed))
    assert loop.record is not None
    expected = [*loop.record.tokens, *([loop.record.end_token] if loop.record.end_token else [])]
    assert out["completion_ids"][0] == expected


def test_a_group_whose_rewards_are_equal_is_left_out_of_the_loss(
    hf_slm: LoadedSLM, expert_problems: tuple[list[Problem], Path], expert_cloud: FallbackCloud
) -> None:
    prompts = [messages_for(p)[0]["content"] for p in expert_problems[0][:2] for _ in range(2)]
    # Every answer is wrong (the reference is not a number) and none calls: rewards all 0.
    rollout = RelayRollout(HFChat(hf_slm.tokenizer, template=hf_slm.chat_template), expert_cloud,
                           dict.fromkeys(prompts, "no number"),
                           load_config(None, None, ["grpo.max_tokens=16", "grpo.group_size=2"]),
                           n_ctx=1024, policy=NeverPolicy())  # fmt: skip
    out = rollout.rollout(HFBatch(hf_slm.model, hf_slm.tokenizer, n_ctx=1024), prompts, step=0)
    assert out["relay_reward"] == [0.0] * 4
    assert all(set(mask) == {0} for mask in out["env_mask"])
    assert [len(m) for m in out["env_mask"]] == [len(c) for c in out["completion_ids"]]


@pytest.mark.slow
def test_one_grpo_step_end_to_end(short_run: ShortRun) -> None:
    slm = short_run.slm
    chat = HFChat(slm.tokenizer, template=slm.chat_template)
    folder = train_grpo(slm, short_run.problems[:2], chat, short_run.cloud, short_run.folder,
                        load_config(None, None, TINY), metrics=short_run.metrics,
                        n_ctx=1024)  # fmt: skip
    rows = short_run.metrics.read("grpo")
    assert any("reward" in row and "kl" in row for row in rows)
    assert any("relay/accuracy" in row and "relay/rollout_tokens_per_s" in row for row in rows)
    assert (folder / "model.safetensors").is_file()

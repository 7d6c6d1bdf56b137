"""The whole run at toy size: every stage, its outputs, and a resume that redoes nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.engine import Generation
from cloud.expert_engine import ExpertEngine
from edge.llama import LlamaModel
from protocol.model_card import trained_card
from protocol.sampling import SamplingParams
from training.cli import app
from training.config import load_config
from training.pipeline import Run, _data
from training.problems import generate, load_problems, messages_for

TOY = [
    "data.train_size=6", "data.heldout_size=3", "data.levels=[1]",
    "sft.epochs=1", "sft.batch_size=3",
    "grpo.steps=1", "grpo.prompts_per_step=1", "grpo.group_size=2", "grpo.max_tokens=24",
    "export.parity_prompts=1", "export.parity_tokens=8", "threads=2",
]  # fmt: skip


@pytest.mark.slow
def test_the_pipeline_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["pipeline", "--out", str(run), "--preset", "cpu-tiny"]
    for override in TOY:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for stage in ("data", "sft", "grpo", "export", "heldout"):
        assert (run / stage / "DONE").is_file(), stage
    parity = json.loads((run / "parity.json").read_text())
    assert parity["f16"]["agreement"] == 1.0  # the f16 file is the trained model, exactly
    assert 0.0 <= parity["Q8_0"]["agreement"] <= 1.0
    heldout = json.loads((run / "heldout.json").read_text())
    assert heldout["questions"] == 3
    assert "held-out" in result.output
    assert (run / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert heldout["unseen"]["questions"] == 3  # the split training never saw, reported apart
    assert "unseen, 3 problems" in result.output
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {line["stage"] for line in lines} == {"sft", "grpo", "grpo_heldout"}
    curve = [line for line in lines if line["stage"] == "grpo_heldout"]
    assert [point["step"] for point in curve] == [0, 1]  # the warm-up model, then after GRPO
    assert all(p["reward_low"] <= p["reward"] <= p["reward_high"] for p in curve)
    warmup, trained = curve  # the gain is paired: the same prompts and seeds at both points
    assert trained["gain"] == pytest.approx(trained["reward"] - warmup["reward"])
    assert trained["gain_low"] <= trained["gain"] <= trained["gain_high"]
    assert len(trained["per_prompt"]) == len(warmup["per_prompt"]) == trained["prompts"]
    model = LlamaModel(run / "model.gguf", n_ctx=256, n_threads=1)  # the edge runtime loads it
    card = trained_card(model.metadata)  # and knows it was trained to call
    assert card is not None
    assert card.chat_template
    assert card.base_model
    assert date.fromisoformat(card.trained_on)
    model.close()

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output  # every stage was done: nothing is trained again
    assert "sft:" not in again.output


def test_the_data_stage_writes_an_unseen_split_the_expert_knows(tmp_path: Path) -> None:
    overrides = ["data.train_size=6", "data.heldout_size=4", "data.levels=[2, 3]", "seed=3"]
    _data(Run(tmp_path, load_config(overrides=overrides), say=lambda line: None))
    data = tmp_path / "data"
    unseen = load_problems(str(data / "unseen.jsonl"))
    assert unseen == generate(4, seed=3, levels=[2, 3], split="unseen")
    seen = load_problems(str(data / "train.jsonl")) + load_problems(str(data / "heldout.jsonl"))
    assert len(seen) == 10
    assert not {p.question for p in unseen} & {p.question for p in seen}
    assert load_problems(str(data / "expert.jsonl")) == seen + unseen
    expert, problem = ExpertEngine.load(data / "expert.jsonl"), unseen[-1]

    async def answer() -> str:
        generation = Generation(SamplingParams(temperature=0.0), max_tokens=None)
        deltas = expert.complete(messages_for(problem)[0]["content"] + "\n", generation)
        return "".join([delta.text async for delta in deltas if delta.text])

    assert asyncio.run(answer()).strip() == problem.solution

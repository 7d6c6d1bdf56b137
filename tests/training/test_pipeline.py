"""The whole run at toy size: every stage, its outputs, and a resume that redoes nothing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.llama import LlamaModel
from protocol.model_card import trained_card
from training.cli import app

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
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert {json.loads(line)["stage"] for line in lines} == {"sft", "grpo"}
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

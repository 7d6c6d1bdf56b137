"""The ``relay`` CLI through typer's runner, and ``relay serve`` through the openai SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    return tmp_path


def test_run_json_streams_events_ending_with_done(
    data_dir: Path, slm_path: Path, cloud_url: str
) -> None:
    args = ["run", "Name a fruit.", "--json", "--slm", str(slm_path), "--seed", "1",
            "--cloud-url", f"{cloud_url}/v1", "--cloud-key", "key-a",
            "--max-tokens", "30", "--prefix", "Sure: <call>4</call>"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert events[-1]["type"] == "done"
    assert {"call_started", "call_finished"} <= {e["type"] for e in events}
    assert events[-1]["llm_tokens"] > 0
    assert 0 < events[-1]["call_ratio"] < 1
    stats = CliRunner().invoke(app, ["stats"])
    assert stats.exit_code == 0
    assert "today" in stats.output
    assert "default" in stats.output  # the call landed in the ledger


def test_run_prints_text_and_summary(data_dir: Path, slm_path: Path) -> None:
    args = ["run", "Say hi.", "--offline", "--slm", str(slm_path), "--max-tokens", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "calls 0 · call ratio 0.0%" in result.output


def test_bad_flag_values_are_reported(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["run", "x", "--policy", "sometimes"])
    assert result.exit_code == 2
    assert "policy" in result.output
    missing = CliRunner().invoke(app, ["run", "x", "--slm", str(data_dir / "no.gguf")])
    assert missing.exit_code == 1
    assert "no model file" in missing.output


def test_chat_keeps_the_conversation(data_dir: Path, slm_path: Path) -> None:
    args = ["chat", "--offline", "--slm", str(slm_path)]
    result = CliRunner().invoke(app, args, input="Hello\nWhat did I say?\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("call ratio") == 2


def test_chat_drops_old_turns_when_the_context_is_full(
    data_dir: Path, slm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYLLM_N_CTX", "512")
    monkeypatch.setenv("RELAYLLM_MAX_TOKENS", "16")
    question = "Tell me more about rivers and lakes and seas, please. " * 8
    args = ["chat", "--offline", "--slm", str(slm_path), "--seed", "3"]
    result = CliRunner().invoke(app, args, input=f"{question}\n" * 6)
    assert result.exit_code == 0, result.output
    assert result.output.count("call ratio") == 6  # every question got an answer
    assert result.output.count("oldest turns are left out") == 1

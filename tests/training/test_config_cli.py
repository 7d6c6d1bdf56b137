"""Run settings (presets, files, overrides) and the relay-train command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.config import PRESETS, load_config


def test_presets_files_and_overrides_stack(tmp_path: Path) -> None:
    file = tmp_path / "run.toml"
    file.write_text('seed = 3\n[grpo]\nsteps = 9\ngroup_size = 8\n[cloud]\nurl = "http://h/v1"\n')
    config = load_config("cpu-tiny", file, ["grpo.steps=2", "warmup.positions=entropy"])
    assert (config.seed, config.grpo.steps, config.grpo.group_size) == (3, 2, 8)
    assert config.data.levels == PRESETS["cpu-tiny"]["data"]["levels"]
    assert (config.cloud.url, config.warmup.positions) == ("http://h/v1", "entropy")
    assert load_config().grpo.max_calls == 2  # the method's 3 SLM turns in training


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["grpo.group_size=1"], "group_size"),
        (["warmup.call_sizes=[0, 4]"], "always has N"),
        (["data.levels=[9]"], "levels"),
        (["grpo.nope=1"], "nope"),
        (["no-equals-sign"], "section.field=value"),
    ],
)
def test_bad_settings_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(None, None, overrides)


def test_relay_train_data_writes_the_problems(tmp_path: Path) -> None:
    args = ["data", "--out", str(tmp_path / "run"), "--preset", "cpu-tiny",
            "--set", "data.train_size=6", "--set", "data.heldout_size=3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert len((run / "data" / "train.jsonl").read_text().splitlines()) == 6
    assert len((run / "data" / "heldout.jsonl").read_text().splitlines()) == 3
    assert json.loads((run / "config.json").read_text())["data"]["train_size"] == 6
    assert "torch" in json.loads((run / "versions.json").read_text())
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0
    assert "data:" not in again.output  # done already: skipped


def test_relay_train_refuses_bad_settings_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "--out", str(tmp_path), "--preset", "gpu-huge"])
    assert result.exit_code == 2
    assert "unknown preset" in result.output
    assert "Traceback" not in result.output


def test_a_run_stopped_by_sigterm_stops_the_cloud_it_started(tmp_path: Path) -> None:
    relay_train = Path(sys.executable).with_name("relay-train")
    command = [str(relay_train), "sft", "--out", str(tmp_path / "run"), "--preset", "cpu-tiny",
               "--set", "data.train_size=6", "--set", "data.heldout_size=3"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(process.pid)
    clouds: list[psutil.Process] = []
    deadline = time.monotonic() + 120  # guards against a hang, not a timing
    while not clouds and process.poll() is None and time.monotonic() < deadline:
        clouds = [c for c in parent.children() if "cloud" in " ".join(c.cmdline())]
        time.sleep(0.2)
    assert clouds, "the run never started its expert cloud"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "run the same command again to resume" in stderr
    _, alive = psutil.wait_procs(clouds, timeout=30)
    assert not alive

"""The ``relay`` CLI through typer's runner, and as a real process where a terminal matters."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.app.cli import app
from edge.app.cloud_process import free_port
from tests.conftest import BIN


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    return tmp_path


def test_run_json_streams_events_ending_with_done(
    data_dir: Path, slm_path: Path, cloud_url: str
) -> None:
    args = ["run", "Name a fruit.", "--json", "--slm", str(slm_path), "--seed", "1",
            "--cloud-url", f"{cloud_url}/v1", "--cloud-key", "key-a", "--policy", "learned",
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
    assert "cloud-test" in stats.output  # the call landed in the ledger, under its model


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
    assert "you> Hello\n" in result.output  # piped: what was read is shown


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


def relay_process(*args: str, data: Path, **env: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "RELAYLLM_DATA_DIR": str(data), "RELAYLLM_N_THREADS": "2",
                   "RELAYLLM_CONFIG": str(data / "none.toml"), **env}  # fmt: skip
    return subprocess.Popen([str(BIN / "relay"), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment)  # fmt: skip


def test_zero_is_a_value_and_bad_values_are_usage_errors(data_dir: Path, slm_path: Path) -> None:
    base = ["run", "Say hi.", "--offline", "--slm", str(slm_path), "--max-tokens", "12"]
    no_calls = CliRunner().invoke(
        app, [*base, "--max-calls", "0", "--policy", "learned", "--prefix", "A<call>4</call>"]
    )
    assert no_calls.exit_code == 0, no_calls.output
    assert "skipped: the answer's call limit is reached" in no_calls.output
    seeded = [CliRunner().invoke(app, [*base, "--seed", "0", "--json"]).output for _ in range(2)]
    texts = [[json.loads(x)["text"] for x in o.splitlines() if '"text"' in x] for o in seeded]
    assert texts[0] == texts[1]
    for flag, value in (("--max-tokens", "0"), ("--max-calls", "-1"), ("--seed", "-4")):
        bad = CliRunner().invoke(app, [*base, flag, value])
        assert bad.exit_code == 2, (flag, bad.output)
        assert flag in bad.output
    from_env = CliRunner().invoke(app, base, env={"RELAYLLM_KV_CACHE": "q4_0"})
    assert from_env.exit_code == 2
    assert "kv_cache (RELAYLLM_KV_CACHE or" in " ".join(from_env.output.split())
    empty = CliRunner().invoke(app, ["run", "   "])
    assert empty.exit_code == 2
    assert "empty" in empty.output


def test_failed_calls_are_visible_and_counted(data_dir: Path, slm_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    args = ["run", "Say hi.", "--slm", str(slm_path), "--cloud-url", dead, "--max-tokens", "16",
            "--prefix", "Sure <call>4</call>", "--seed", "1", "--policy", "learned"]  # fmt: skip
    done = subprocess.run([str(BIN / "relay"), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RELAYLLM_DATA_DIR": str(data_dir)})  # fmt: skip
    assert done.returncode == 0
    assert f"cloud call failed: cannot reach {dead}/" in done.stderr
    assert "cannot reach" not in done.stdout  # the answer is not polluted
    assert "calls 1 failed" in done.stdout
    env = {**os.environ, "RELAYLLM_DATA_DIR": str(data_dir)}
    strict = subprocess.run([str(BIN / "relay"), *args, "--require-cloud"], capture_output=True,
                            text=True, timeout=120, env=env)  # fmt: skip
    assert strict.returncode == 3


def test_ctrl_c_stops_run_with_130_and_no_traceback(tmp_path: Path, slm_path: Path) -> None:
    run = relay_process("run", "Tell me a very long story.", "--offline", "--slm",
                        str(slm_path), "--max-tokens", "2000", data=tmp_path,
                        RELAYLLM_REPEAT_GUARD="0")  # fmt: skip
    assert run.stdout is not None
    run.stdout.read(5)  # the answer is under way
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 130
    assert "Traceback" not in stderr
    assert "stopped" in stderr


def test_ctrl_c_in_chat_stops_the_answer_and_the_chat_goes_on(
    tmp_path: Path, slm_path: Path
) -> None:
    chat = relay_process("chat", "--offline", "--slm", str(slm_path), "--max-tokens", "2000",
                         data=tmp_path, RELAYLLM_REPEAT_GUARD="0")  # fmt: skip
    assert chat.stdin is not None
    assert chat.stdout is not None
    chat.stdin.write("Tell me a very long story.\n")
    chat.stdin.flush()
    assert chat.stdout.readline() == "you> Tell me a very long story.\n"  # what it read
    chat.stdout.read(5)  # the answer is under way
    chat.send_signal(signal.SIGINT)
    time.sleep(1)
    stdout, stderr = chat.communicate("What was my first question?\n", timeout=120)
    assert chat.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped" in stderr
    assert stdout.count("call ratio") == 1  # the second answer finished; the first was cut


def test_setup_problems_are_one_line_without_traceback(tmp_path: Path, slm_path: Path) -> None:
    relay_cloud = str(BIN / "relay-cloud")
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(slm_path.read_bytes()[: 1 << 20])
    cases = [
        ([relay_cloud, "serve", "--model", "/nope.gguf", "--insecure-no-auth"], "no model file"),
        ([relay_cloud, "serve", "--model", str(not_gguf), "--insecure-no-auth"], "could not load"),
        ([relay_cloud, "serve", "--model", str(truncated), "--insecure-no-auth"], "could not load"),
        ([str(BIN / "relay"), "run", "hi", "--slm", str(slm_path)], "cannot use the ledger"),
    ]
    env = {**os.environ, "RELAYLLM_LEDGER_PATH": "/proc/no/ledger.sqlite3"}
    for command, message in cases:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 1, (command, done.stderr)
        assert message in done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) <= 2


def test_a_busy_port_is_one_clear_line(tmp_path: Path, slm_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "relay"), "serve", "--port", str(port), "--slm", str(slm_path), "--offline"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "RELAYLLM_DATA_DIR": str(tmp_path)},
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "relay serving" not in done.stdout
    assert "Traceback" not in done.stderr


def test_help_names_the_defaults_and_loads_nothing_heavy() -> None:
    """How quick it is, is a benchmark (``cli_start_ms``)."""
    done = subprocess.run([str(BIN / "relay"), "run", "--help"], capture_output=True, text=True)
    assert "http://127.0.0.1:8300/v1" in done.stdout
    heavy = "{'llama_cpp', 'httpx', 'fastapi'}"
    code = f"import sys, edge.app.cli; print(sorted({heavy} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "command",
    [
        ["relay", "--help"],
        ["relay", "run", "--help"],
        ["relay-cloud", "serve", "--help"],
        ["relay-train", "--help"],
    ],
)
def test_flags_show_no_value_placeholder_in_help(command: list[str]) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    done = subprocess.run([str(BIN / command[0]), *command[1:]], capture_output=True, text=True,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--help" in done.stdout
    assert "<bool>" not in done.stdout  # a flag takes no value
    if command[1:] == ["run", "--help"]:
        assert "--max-tokens" in done.stdout
        assert "<int>" in done.stdout  # options that take one still say what


def test_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"relayllm {version('relayllm')}"


def test_cloud_flags_go_with_their_own_url(data_dir: Path) -> None:
    from edge.app.cli import settings_from

    one = settings_from(cloud_url=["http://a/v1"], cloud_key=["ka"], cloud_api=["chat"])
    assert (one.cloud_url, one.cloud_api, one.clouds) == ("http://a/v1", "chat", [])
    assert settings_from(cloud_url="http://a/v1").cloud_list()[0].url == "http://a/v1"  # relay demo
    two = settings_from(cloud_url=["http://a/v1", "http://b/v1"], cloud_key=["ka"],
                        cloud_model=["ma", "mb"])  # fmt: skip
    first, second = two.cloud_list()
    assert (first.key.get_secret_value(), first.model) == ("ka", "ma")  # type: ignore[union-attr]
    assert (second.key, second.model) == (None, "mb")  # a key never goes to another URL
    mismatch = CliRunner().invoke(app, ["cloud", "check", "--cloud-url", "http://a/v1",
                                        "--cloud-key", "k1", "--cloud-key", "k2"])  # fmt: skip
    assert mismatch.exit_code == 2
    assert "--cloud-key was given 2 times" in mismatch.output
    old = CliRunner().invoke(app, ["cloud", "check", "--cloud-url", "http://127.0.0.1:9/v1"],
                             env={"RELAYLLM_CLOUD_MODE": "raw"})  # fmt: skip
    assert 'replaced by cloud_api = "completions"' in old.output
    assert old.exit_code == 1
    assert "Traceback" not in old.output


def test_a_missing_cloud_or_a_bad_url_is_said_at_once(data_dir: Path, slm_path: Path) -> None:
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    args = ["run", "Hi", "--slm", str(slm_path), "--max-tokens", "4", "--cloud-url", dead]
    result = CliRunner().invoke(app, [*args, "--policy", "entropy"])
    assert result.exit_code == 0
    assert f"the cloud at {dead} cannot be reached" in result.output
    quiet = CliRunner().invoke(app, [*args, "--policy", "never"])  # it will not be asked
    assert "cannot be reached" not in quiet.output
    bad = CliRunner().invoke(app, ["run", "Hi", "--cloud-url", "not-a-url"])
    assert bad.exit_code == 2
    assert "'not-a-url' is not an http:// or https:// URL" in bad.output

"""``relay cloud check``: one line per configured cloud, exit 0 when the first one works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.app.cli import app
from tests.conftest import free_port
from tests.edge.clouds.conftest import Served


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"RELAYLLM_DATA_DIR": str(tmp_path), "RELAYLLM_CONFIG": str(tmp_path / "none.toml")}


def check(env: dict[str, str], *clouds: Served | str, json_out: bool = False) -> tuple[int, str]:
    args = ["cloud", "check", *(["--json"] if json_out else [])]
    for cloud in clouds:
        url, key, model = (cloud, "k", "m") if isinstance(cloud, str) else (
            cloud.url, cloud.key, cloud.model)  # fmt: skip
        args += ["--cloud-url", url, "--cloud-key", key, "--cloud-model", model]
    result = CliRunner().invoke(app, args, env=env)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("provider", "api"),
    [("openai_cloud", "chat"), ("anthropic_cloud", "anthropic"),
     ("deepseek_cloud", "chat-prefix"), ("mistral_cloud", "chat-prefix")],
)  # fmt: skip
def test_each_provider_is_probed_and_works(
    env: dict[str, str], provider: str, api: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(provider)
    code, output = check(env, served)
    assert code == 0, output
    assert output.startswith("ok ")
    assert f"{api} (probed)" in output
    assert "auth ok" in output
    assert "continued" in output
    assert "first token" in output
    # remembered: a second check (a new process) sends the probe once, not every family's
    before = len(served.emulator.requests)
    code, output = check(env, served)
    assert code == 0
    assert f"{api} (probed)" in output
    assert len(served.emulator.requests) == before + 1


def test_json_one_object_per_cloud_and_the_first_decides(
    env: dict[str, str], openai_cloud: Served
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    code, output = check(env, openai_cloud, dead, json_out=True)
    first, second = (json.loads(line) for line in output.splitlines())
    assert code == 0
    assert (first["ok"], first["api"], first["verdict"]) == (True, "chat", "continued")
    assert first["price"]["prompt"] == 0.0
    assert second["ok"] is False
    assert "cannot reach" in second["error"]
    code, output = check(env, dead, openai_cloud)
    assert code == 1
    assert output.splitlines()[0].startswith("FAILED")


@pytest.mark.parametrize("api", ["chat", "auto"])
def test_a_cloud_that_never_answered_is_not_called_auth_ok(env: dict[str, str], api: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    args = ["cloud", "check", "--cloud-url", closed, "--cloud-key", "k", "--cloud-model",
            "gpt-4o-mini", "--cloud-api", api]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1
    assert result.output.startswith("FAILED")
    assert "auth unknown" in result.output
    assert "auth ok" not in result.output
    assert "Traceback" not in result.output


def test_a_refused_key_is_said_in_one_line(env: dict[str, str], anthropic_cloud: Served) -> None:
    wrong = Served(anthropic_cloud.emulator, anthropic_cloud.url, "sk-wrong", "claude-haiku-4-5")
    code, output = check(env, wrong)
    assert code == 1
    assert "auth refused (401)" in output
    assert len(output.strip().splitlines()) == 1


def test_a_cloud_that_does_not_continue_is_reported(env: dict[str, str]) -> None:
    from benchmarks.servers import serve_in_thread
    from tests.emulators.openai import OpenAIEmulator
    from tests.emulators.scripted import Script

    restarting = OpenAIEmulator(script=Script(texts=()))  # answers every partial anew
    with serve_in_thread(restarting.app) as url:
        code, output = check(env, Served(restarting, url, restarting.key, "gpt-4o-mini"))
    assert code == 1
    assert "no API continues a partial answer there" in output


@pytest.mark.parametrize(
    ("api", "how"),
    [("completions", "configured"), ("chat-continue", "configured"), ("auto", "relay-cloud")],
)
def test_relay_cloud_passes_in_both_of_its_families(
    env: dict[str, str], cloud_url: str, api: str, how: str
) -> None:
    args = ["cloud", "check", "--cloud-url", f"{cloud_url}/v1", "--cloud-key", "key-a",
            "--cloud-api", api]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert f"({how})" in result.output
    assert "continued" in result.output


def test_a_reasoning_model_that_thinks_through_the_probe_still_passes(
    env: dict[str, str], openai_cloud: Served
) -> None:
    openai_cloud.emulator.reasoning_tokens = 12  # more than the probe's 8 tokens
    thinking = Served(openai_cloud.emulator, openai_cloud.url, openai_cloud.key, "o3-mini")
    code, output = check(env, thinking)
    assert code == 0, output
    assert "chat (probed)" in output
    assert "continued" in output
    sent = openai_cloud.emulator.requests[-1]
    assert sent["max_completion_tokens"] > 12  # the probe again, with room to think
    assert sent["reasoning_effort"] == "low"

"""Real installable peers as relay clouds: LiteLLM's proxy in front of relay-cloud, in a chain,
and llama-cpp-python's own server, whose chat route answers a new turn instead of continuing."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge.app.cli import app
from edge.app.cloud_process import running
from edge.app.runtime import build_relay
from edge.app.settings import EdgeSettings
from edge.llama import LlamaModel
from protocol.events import CallFinished, CloudSkipped
from tests.conftest import free_port
from tests.edge.conftest import ModelSpy, assert_consistent

ROOT = Path(__file__).resolve().parents[3]
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
PREFIX = "The sky is <call>8</call>"


@pytest.fixture(scope="module")
def litellm_url(cloud_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """LiteLLM's proxy (``make test`` installs it) routing ``relay-big`` to relay-cloud."""
    if not LITELLM.exists():
        reason = f"LiteLLM's proxy is not installed at {LITELLM} (make test installs it)"
        if os.environ.get("RELAYLLM_CI") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    config = tmp_path_factory.mktemp("litellm") / "config.yaml"
    route = {"model": "openai/cloud-test", "api_base": f"{cloud_url}/v1", "api_key": "key-a"}
    config.write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": "relay-big", "litellm_params": route}],
        "general_settings": {"master_key": "sk-litellm"},
        "litellm_settings": {"num_retries": 0, "request_timeout": 30},
    }))  # fmt: skip
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_MODE": "PRODUCTION", "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True"}  # fmt: skip
    port = free_port()
    command = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with running(command, f"http://127.0.0.1:{port}/health/liveliness", env=env, quiet=True):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def llama_server(cloud_model_path: Path) -> Iterator[str]:
    """llama-cpp-python's server on the bundled cloud model (chat and raw completions)."""
    port = free_port()
    options = {"--model": str(cloud_model_path), "--port": str(port), "--n_ctx": "2048",
               "--model_alias": "gemma", "--n_threads": "2"}  # fmt: skip
    command = [sys.executable, "-m", "llama_cpp.server", *(x for o in options.items() for x in o)]
    with running(command, f"http://127.0.0.1:{port}/v1/models", quiet=True):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"RELAYLLM_DATA_DIR": str(tmp_path), "RELAYLLM_CONFIG": str(tmp_path / "none.toml")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def check(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["cloud", "check", *args], env=env)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_litellm_serves_a_chain_when_the_first_cloud_is_dead(
    slm: LlamaModel, litellm_url: str, isolated: dict[str, str]
) -> None:
    dead: dict[str, Any] = {"url": f"http://127.0.0.1:{free_port()}/v1", "name": "dead",
                            "model": "m", "cloud_api": "chat"}  # fmt: skip
    litellm = {"url": litellm_url, "key": "sk-litellm", "model": "relay-big", "name": "litellm"}
    settings = EdgeSettings(
        clouds=[dead, litellm], policy="learned", max_tokens=40, temperature=0, retries=0
    )
    spy = ModelSpy(slm)
    relay = build_relay(settings, model=spy)  # type: ignore[arg-type]
    prompt = relay.prompt([{"role": "user", "content": "Why is the sky blue?"}])
    events = list(relay.answer(prompt, prefix=PREFIX))
    assert_consistent(spy, relay.record, events)  # type: ignore[arg-type]
    assert [e.cloud for e in events if isinstance(e, CloudSkipped)][:1] == ["dead"]
    finished = [e for e in events if isinstance(e, CallFinished)]
    assert (finished[0].cloud, finished[0].outcome) == ("litellm", "ok")
    call = relay.record.calls[0]  # type: ignore[union-attr]
    assert call.prompt_tokens > 0  # usage as LiteLLM passed it on from relay-cloud
    assert 0 < call.completion_tokens <= 8
    assert relay.clouds[1]["api"] == "completions"  # probed through the proxy


def test_litellm_passes_relay_cloud_check(litellm_url: str, isolated: dict[str, str]) -> None:
    code, output = check(isolated, "--cloud-url", litellm_url, "--cloud-key", "sk-litellm",
                         "--cloud-model", "relay-big")  # fmt: skip
    assert code == 0, output
    assert "completions (probed)" in output
    code, output = check(isolated, "--cloud-url", litellm_url, "--cloud-key", "sk-wrong",
                         "--cloud-model", "relay-big")  # fmt: skip
    assert code == 1
    assert output.startswith("FAILED")


def test_llama_cpp_chat_answers_anew_and_auto_takes_raw_completions(
    slm: LlamaModel, llama_server: str, isolated: dict[str, str]
) -> None:
    code, output = check(isolated, "--cloud-url", llama_server, "--cloud-api", "chat-continue")
    assert code == 1
    assert "did not continue the partial answer" in output
    assert "restarted" in output or "answered anew" in output
    code, output = check(isolated, "--cloud-url", llama_server)
    assert code == 0, output
    assert "completions (probed)" in output
    settings = EdgeSettings(
        cloud_url=llama_server, policy="learned", max_tokens=40, temperature=0, retries=0
    )
    spy = ModelSpy(slm)
    relay = build_relay(settings, model=spy)  # type: ignore[arg-type]
    prompt = relay.prompt([{"role": "user", "content": "Why is the sky blue?"}])
    events = list(relay.answer(prompt, prefix=PREFIX))
    assert_consistent(spy, relay.record, events)  # type: ignore[arg-type]
    assert next(e.outcome for e in events if isinstance(e, CallFinished)) == "ok"

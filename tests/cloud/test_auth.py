"""API keys: 401 without or with a wrong key; the demo switch is loopback-only."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from cloud.cli import app
from cloud.settings import CloudSettings

MODEL = "cloud-test"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "key-a"},
        {"Authorization": "Basic a2V5LWE6"},
    ],
)
def test_missing_or_wrong_key_is_401(cloud_url: str, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/completions")]:
        response = httpx.request(
            method, f"{cloud_url}{path}", headers=headers, json={"prompt": "x"}, timeout=10
        )
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["type"] == "authentication_error"
        assert "key-a" not in response.text


def test_sdk_with_wrong_key_raises_authentication_error(cloud_url: str) -> None:
    client = openai.OpenAI(base_url=f"{cloud_url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.completions.create(model=MODEL, prompt="x", max_tokens=1)


def test_every_configured_key_works_and_health_is_open(cloud_url: str) -> None:
    for key in ("key-a", "key-b"):
        response = httpx.get(f"{cloud_url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
    assert httpx.get(f"{cloud_url}/health").json()["status"] == "ok"


def test_keys_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nalpha\n\n  beta  \n")
    settings = CloudSettings(api_keys_file=keys, api_keys=["gamma"])
    assert settings.load_api_keys() == ("gamma", "alpha", "beta")


def test_settings_need_keys_or_the_demo_switch() -> None:
    with pytest.raises(ValidationError, match="no API keys"):
        CloudSettings()
    assert CloudSettings(insecure_no_auth=True).load_api_keys() == ()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com"])
def test_no_auth_refused_off_loopback(host: str) -> None:
    with pytest.raises(ValidationError, match="loopback"):
        CloudSettings(host=host, insecure_no_auth=True)


def test_cli_refuses_no_auth_off_loopback() -> None:
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--insecure-no-auth"])
    assert result.exit_code == 2
    assert "loopback" in result.output


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYLLM_CLOUD_API_KEYS", '["env-key"]')
    monkeypatch.setenv("RELAYLLM_CLOUD_PORT", "9999")
    settings = CloudSettings()
    assert settings.port == 9999
    assert settings.load_api_keys() == ("env-key",)

"""Edge settings: TOML file, environment and flags, in that order of strength."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.app.settings import EdgeSettings

UseConfig = Callable[[str, str | None], Path]


@pytest.fixture
def use_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UseConfig:
    """Points the settings at the config file ``name`` under ``tmp_path``, holding ``text``
    (absent when ``text`` is None)."""

    def use(name: str, text: str | None) -> Path:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        monkeypatch.setenv("RELAYLLM_CONFIG", str(path))
        return path

    return use


def test_toml_then_environment_then_arguments(
    use_config: UseConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_config(
        "relayllm.toml",
        'cloud_url = "http://toml/v1"\npolicy = "entropy"\nmax_calls = 2\n'
        "[caps]\ntokens_per_day = 1000\n[prices.big]\nprompt = 0.5\ncompletion = 1.5\n",
    )
    monkeypatch.setenv("RELAYLLM_MAX_CALLS", "3")
    monkeypatch.setenv("RELAYLLM_CAPS__USD_PER_DAY", "0.25")
    settings = EdgeSettings(policy="never")
    assert settings.cloud_url == "http://toml/v1"
    assert settings.max_calls == 3
    assert settings.policy == "never"
    assert settings.caps.tokens_per_day == 1000
    assert settings.caps.usd_per_day == 0.25
    assert settings.prices["big"].completion == 1.5


def test_values_are_bounded(use_config: UseConfig) -> None:
    use_config("absent.toml", None)
    for bad in ({"policy": "sometimes"}, {"max_tokens": 0}, {"temperature": 5}):
        with pytest.raises(ValidationError):
            EdgeSettings(**bad)  # type: ignore[arg-type]


def test_clouds_in_order_from_the_config_file(
    tmp_path: Path, use_config: UseConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_config(
        "relayllm.toml",
        '[[clouds]]\nurl = "https://api.openai.com/v1"\nmodel = "gpt-4o-mini"\n'
        "[clouds.prices]\nprompt = 0.15\ncompletion = 0.6\ncached_prompt = 0.075\n"
        "[clouds.caps]\nusd_per_day = 1.0\n"
        '[[clouds]]\nurl = "https://api.anthropic.com"\nkey_env = "MY_CLAUDE_KEY"\n'
        'model = "claude-haiku-4-5"\ncloud_api = "anthropic"\n'
        "first_token_timeout_s = 90\ntotal_timeout_s = 300\nretries = 0\ntemperature = 0.2\n",
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("MY_CLAUDE_KEY", "sk-ant-from-env")
    settings = EdgeSettings()
    first, second = settings.cloud_list()
    assert (first.url, first.cloud_api, second.cloud_api) == (
        "https://api.openai.com/v1", "auto", "anthropic")  # fmt: skip
    assert settings.price_of(first).cached_prompt == 0.075
    assert first.caps.usd_per_day == 1.0
    from edge.app.cloud_stack import http_clouds

    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    openai, claude = http_clouds(settings)
    assert (openai.name, openai.api_key) == ("openai", "sk-from-env")  # the provider's variable
    assert (claude.name, claude.api_key) == ("anthropic", "sk-ant-from-env")
    # a cloud's own timeouts, retries and temperature; the others keep the global ones
    assert (claude.total_timeout_s, claude.retries, claude.temperature) == (300, 0, 0.2)
    assert claude._client.timeout.read == 90
    assert (openai.total_timeout_s, openai.retries, openai.temperature) == (
        settings.total_timeout_s, settings.retries, settings.cloud_temperature)  # fmt: skip
    assert openai._client.timeout.read == settings.first_token_timeout_s
    use_config("bad.toml", '[[clouds]]\nurl = "http://127.0.0.1:1/v1"\nfirst_token_timeout_s = 0\n')
    with pytest.raises(ValidationError, match="first_token_timeout_s"):
        EdgeSettings()


def test_the_old_cloud_mode_still_works_with_a_note(
    use_config: UseConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_config("absent.toml", None)
    monkeypatch.setenv("RELAYLLM_CLOUD_MODE", "chat")
    settings = EdgeSettings()
    assert settings.cloud_api == "chat-continue"
    (note,) = settings.notes()
    assert "cloud_api" in note
    assert EdgeSettings(cloud_api="chat").cloud_api == "chat"  # the new setting wins
    with pytest.raises(ValidationError):
        EdgeSettings(cloud_api="openai")  # type: ignore[arg-type]

"""Edge settings: TOML file, environment and flags, in that order of strength."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.settings import EdgeSettings


def test_toml_then_environment_then_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "relayllm.toml"
    config.write_text(
        'cloud_url = "http://toml/v1"\npolicy = "entropy"\nmax_calls = 2\n'
        "[caps]\ntokens_per_day = 1000\n[prices.big]\nprompt = 0.5\ncompletion = 1.5\n"
    )
    monkeypatch.setenv("RELAYLLM_CONFIG", str(config))
    monkeypatch.setenv("RELAYLLM_MAX_CALLS", "3")
    monkeypatch.setenv("RELAYLLM_CAPS__USD_PER_DAY", "0.25")
    settings = EdgeSettings(policy="never")
    assert settings.cloud_url == "http://toml/v1"
    assert settings.max_calls == 3
    assert settings.policy == "never"
    assert settings.caps.tokens_per_day == 1000
    assert settings.caps.usd_per_day == 0.25
    assert settings.prices["big"].completion == 1.5


def test_values_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "absent.toml"))
    for bad in ({"policy": "sometimes"}, {"max_tokens": 0}, {"temperature": 5}):
        with pytest.raises(ValidationError):
            EdgeSettings(**bad)  # type: ignore[arg-type]

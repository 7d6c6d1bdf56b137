"""Flags made from settings fields: help and default from the field, a flag not given left out."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from edge.openai_compat.flags import Flag, SettingsFlags

EDGE = SettingsFlags("edge.app.settings:EdgeSettings")


def command_of(*flags: Flag) -> tuple[typer.Typer, list[dict[str, Any]]]:
    app, seen = typer.Typer(), []

    @EDGE.command(app, *flags)
    def run(*, flags: dict[str, Any], other: int = 1) -> None:
        seen.append(flags | {"other": other})

    @app.command()
    def unused() -> None: ...

    return app, seen


def test_help_comes_from_the_field() -> None:
    app, _ = command_of(Flag("max_tokens", int), Flag("policy"), Flag("offline", bool),
                        Flag("cloud_url", list[str], note="Repeat it."))  # fmt: skip
    shown = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"}).output
    assert "Most tokens in one answer. Default: 512." in shown
    assert "One of: auto, learned, entropy, random, never, cloud. Default: auto." in shown
    assert "Never touch the network." in shown
    assert "Cloud base URL. Default: http://127.0.0.1:8300/v1. Repeat it." in shown


def test_only_given_flags_reach_the_command() -> None:
    app, seen = command_of(Flag("seed", int), Flag("offline", bool), Flag("api_keys", list[str],
                           name="--api-key"))  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(app, ["run"]).exit_code == 0
    args = ["run", "--seed", "0", "--offline", "--api-key", "a", "--api-key", "b", "--other", "2"]
    assert runner.invoke(app, args).exit_code == 0
    assert seen == [{"other": 1},
                    {"seed": 0, "offline": True, "api_keys": ["a", "b"], "other": 2}]  # fmt: skip

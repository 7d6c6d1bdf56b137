"""``relay-cloud``: run the cloud LLM endpoint.

Every flag can also be set by environment (``RELAYLLM_CLOUD_<FIELD>``); flags win.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from cloud.keys_cli import hash_key, usage
from cloud.settings import CloudSettings
from edge.openai_compat.flags import Flag, LogFormat, LogFormatChoice, LogLevel, SettingsFlags
from protocol.cli_help import plain_flags

app = typer.Typer(help="The relayllm cloud endpoint (OpenAI-compatible).", no_args_is_help=True)
plain_flags()
err = Console(stderr=True, soft_wrap=True)
app.command()(usage)
app.command("hash-key")(hash_key)


@app.callback()
def main() -> None:
    """The relayllm cloud endpoint (OpenAI-compatible)."""


def _settings(flags: dict[str, Any]) -> CloudSettings:
    try:
        return CloudSettings(**flags)
    except ValidationError as exc:
        for error in exc.errors():
            err.print(f"[red]error:[/red] {error['msg'].removeprefix('Value error, ')}")
        raise typer.Exit(2) from exc


SERVE = (
    Flag("host"),
    Flag("port", int),
    Flag("engine"),
    Flag("problems", Path),
    Flag("expert_mode"),
    Flag("model"),
    Flag("model_id"),
    Flag("n_ctx", int),
    Flag("n_threads", int),
    Flag("n_gpu_layers", name="--gpu-layers"),
    Flag("api_keys", list[str], name="--api-key", note="Repeatable."),
    Flag("api_keys_file", Path),
    Flag("tokens_per_day", int),
    Flag("requests_per_minute", int),
    Flag("state_url"),
    Flag("insecure_no_auth", bool),
    Flag("metrics_public", bool),
    Flag("max_body_bytes", int),
    Flag("max_queue", int),
    Flag("prompt_slots", int),
    Flag("parallel", int),
    Flag("max_output_tokens", int, note="A request that names no limit gets this many."),
    Flag("request_timeout_s", float, name="--request-timeout"),
    Flag("upstream_url"),
    Flag("upstream_api_key"),
    Flag("upstream_model"),
)
"""The flags of ``relay-cloud serve``: fields of :class:`CloudSettings`."""


@SettingsFlags("cloud.settings:CloudSettings").command(app, *SERVE)
def serve(
    *,
    flags: dict[str, Any],
    log_level: LogLevel = "info",
    log_format: LogFormat = LogFormatChoice.text,
) -> None:
    """Serve /v1/completions, /v1/chat/completions, /v1/models, /health and /metrics."""
    from cloud.app import build_engine, create_app
    from cloud.keys import load_keys
    from cloud.state import open_store
    from edge.openai_compat.server import serve_app
    from protocol.errors import RelayError

    settings = _settings(flags)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        keys = load_keys(settings)  # a bad keys file or store is one line, before the model loads
        store = open_store(settings.state_url_value)
        engine = build_engine(settings)  # loaded before serving: a bad model is one clear line
        app = create_app(settings, engine=engine, store=store, keys=keys)
        serve_app(app, settings.host, settings.port,
                  announce=lambda url: err.print(f"relay-cloud serving {engine.model_id} on "
                                                 f"{url}/v1"), log_level=log_level,
                  log_format=log_format.value)  # fmt: skip
    except RelayError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None

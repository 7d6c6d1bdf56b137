"""``relay serve``: the relay as a local OpenAI-compatible endpoint and chat page."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from edge.app.cli.common import (
    DEFAULT_SERVE_PORT,
    EDGE,
    SERVE,
    app,
    err,
    fail,
    out,
    say_notes,
    settings_from,
)
from edge.openai_compat.flags import LogFormat, LogFormatChoice, LogLevel
from protocol.errors import RelayError


@EDGE.command(app, *SERVE)
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_SERVE_PORT,
    *,
    flags: dict[str, Any],
    log_level: LogLevel = "info",
    log_format: LogFormat = LogFormatChoice.text,
) -> None:
    """Serve the relay as an OpenAI-compatible /v1/chat/completions on this machine."""
    settings = settings_from(**flags)
    from edge.openai_compat.server import is_loopback

    if not is_loopback(host) and not settings.api_keys:
        err.print(f"[red]error:[/red] {escape(host)} is not a loopback address: give relay "
                  "serve a key (--api-key KEY or RELAYLLM_API_KEYS) to listen there")  # fmt: skip
        raise typer.Exit(2)
    try:
        from edge.app.server import create_edge_app, serve_app
    except ImportError as exc:
        err.print("[red]error:[/red] relay serve needs: pip install 'relayllm[cloud]'")
        raise typer.Exit(1) from exc
    from edge.app.runtime import build_relay

    try:
        relay = build_relay(settings)
        say_notes(relay)

        def announce(url: str) -> None:
            out.print(f"relay serving on {url}/v1 (model 'relayllm')", highlight=False)

        app = create_edge_app(relay, max_waiting=settings.max_waiting)
        serve_app(app, host, port, announce=announce, log_level=log_level,
                  log_format=log_format.value)  # fmt: skip
    except RelayError as exc:
        raise fail(exc) from exc

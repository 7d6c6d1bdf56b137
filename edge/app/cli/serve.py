"""``relay serve``: the relay as a local OpenAI-compatible endpoint and chat page."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from edge.app.cli.common import (
    DEFAULT_SERVE_PORT,
    ApiOpt,
    CallsOpt,
    GpuOpt,
    KeyOpt,
    ModelOpt,
    OfflineOpt,
    PolicyOpt,
    SeedOpt,
    SlmOpt,
    TokensOpt,
    UrlOpt,
    app,
    err,
    fail,
    out,
    say_notes,
    settings_from,
)
from protocol.cli_help import LogFormatChoice
from protocol.errors import RelayError


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_SERVE_PORT,
    slm: SlmOpt = None,
    cloud_url: UrlOpt = None,
    cloud_key: KeyOpt = None,
    cloud_model: ModelOpt = None,
    cloud_api: ApiOpt = None,
    gpu_layers: GpuOpt = None,
    policy: PolicyOpt = None,
    offline: OfflineOpt = None,
    max_calls: CallsOpt = None,
    max_tokens: TokensOpt = None,
    seed: SeedOpt = None,
    max_output_tokens: Annotated[
        int | None,
        typer.Option(help="Most tokens a request may ask for (default 4096; more is a 400)."),
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds until an answer is cut (finish_reason length; default 300)."),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key", help="Key the /v1 routes accept (repeatable; needed off loopback)."
        ),
    ] = None,
    metrics_public: Annotated[
        bool | None,
        typer.Option("--metrics-public", help="GET /metrics without a key (a private network)."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="Log level (info, the default: a line per request).")
    ] = "info",
    log_format: Annotated[
        LogFormatChoice, typer.Option(help="text, or json: one object a line.")
    ] = LogFormatChoice.text,
) -> None:
    """Serve the relay as an OpenAI-compatible /v1/chat/completions on this machine."""
    settings = settings_from(
        slm=slm, cloud_url=cloud_url, cloud_key=cloud_key, cloud_model=cloud_model,
        cloud_api=cloud_api, n_gpu_layers=gpu_layers,
        policy=policy, offline=offline, max_calls=max_calls, max_tokens=max_tokens, seed=seed,
        max_output_tokens=max_output_tokens, request_timeout_s=request_timeout,
        api_keys=api_key or None, metrics_public=metrics_public,
    )  # fmt: skip
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

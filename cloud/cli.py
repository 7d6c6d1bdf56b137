"""``relay-cloud``: run the cloud LLM endpoint.

Every flag can also be set by environment (``RELAYLLM_CLOUD_<FIELD>``); flags win.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from cloud.keys_cli import hash_key, usage
from cloud.settings import CloudSettings
from protocol.cli_help import LogFormatChoice, plain_flags

app = typer.Typer(help="The relayllm cloud endpoint (OpenAI-compatible).", no_args_is_help=True)
plain_flags()
err = Console(stderr=True, soft_wrap=True)
app.command()(usage)
app.command("hash-key")(hash_key)


@app.callback()
def main() -> None:
    """The relayllm cloud endpoint (OpenAI-compatible)."""


def _settings(**flags: Any) -> CloudSettings:
    given = {  # not given: None, an empty list, an unset switch; 0 is a value
        name: value
        for name, value in flags.items()
        if value is not None and value != [] and value is not False
    }
    try:
        return CloudSettings(**given)
    except ValidationError as exc:
        for error in exc.errors():
            err.print(f"[red]error:[/red] {error['msg'].removeprefix('Value error, ')}")
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    engine: Annotated[
        str | None, typer.Option(help="auto, llama, upstream or expert (see the README).")
    ] = None,
    problems: Annotated[
        Path | None, typer.Option(help="Expert engine: JSONL (or dataset folder) of its problems.")
    ] = None,
    expert_mode: Annotated[
        str | None,
        typer.Option(
            help="Expert engine: faithful (default: the next steps) or oracle (skips "
            "to the boxed answer; a comparison-only sanity check)."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="GGUF path (default: the bundled cloud model).")
    ] = None,
    model_id: Annotated[str | None, typer.Option(help="Name to serve the model under.")] = None,
    n_ctx: Annotated[int | None, typer.Option(help="Context window.")] = None,
    n_threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: the free physical cores).")
    ] = None,
    gpu_layers: Annotated[
        str | None, typer.Option(help="Layers on the GPU: auto (default), a number, 0 or -1.")
    ] = None,
    api_key: Annotated[
        list[str] | None, typer.Option("--api-key", help="Accepted API key (repeatable).")
    ] = None,
    api_keys_file: Annotated[
        Path | None, typer.Option(help="File of API keys (*.toml: named keys with limits).")
    ] = None,
    tokens_per_day: Annotated[
        int | None, typer.Option(help="Tokens per UTC day for each key (default: no cap).")
    ] = None,
    requests_per_minute: Annotated[
        int | None, typer.Option(help="Requests per minute for each key (default: no cap).")
    ] = None,
    state_url: Annotated[
        str | None, typer.Option(help="Usage store: sqlite:///PATH or postgresql://...")
    ] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option("--insecure-no-auth", help="No API key needed (loopback only).")
    ] = False,
    metrics_public: Annotated[
        bool, typer.Option("--metrics-public", help="GET /metrics without a key (private network).")
    ] = False,
    max_body_bytes: Annotated[int | None, typer.Option(help="Largest request body.")] = None,
    max_queue: Annotated[
        int | None, typer.Option(help="Requests answered or waiting at once (then 429).")
    ] = None,
    prompt_slots: Annotated[
        int | None, typer.Option(help="Conversations whose KV context the engine keeps.")
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option(help="Answers generated at once (default: n_ctx/512, at most 8)."),
    ] = None,
    max_output_tokens: Annotated[
        int | None, typer.Option(help="Most tokens one answer may ask for (default 4096).")
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds until an answer is cut (finish_reason length; default 300)."),
    ] = None,
    upstream_url: Annotated[
        str | None, typer.Option(help="Forward to this OpenAI-compatible base URL.")
    ] = None,
    upstream_api_key: Annotated[str | None, typer.Option(help="Upstream API key.")] = None,
    upstream_model: Annotated[str | None, typer.Option(help="Upstream model name.")] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    log_format: Annotated[
        LogFormatChoice, typer.Option(help="text, or json: one object a line.")
    ] = LogFormatChoice.text,
) -> None:
    """Serve /v1/completions, /v1/chat/completions, /v1/models, /health and /metrics."""
    from cloud.app import build_engine, create_app
    from cloud.keys import load_keys
    from cloud.state import open_store
    from edge.openai_compat.server import serve_app
    from protocol.errors import RelayError

    settings = _settings(
        host=host,
        port=port,
        engine=engine,
        problems=problems,
        expert_mode=expert_mode,
        model=model,
        model_id=model_id,
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_gpu_layers=gpu_layers,
        api_keys=api_key,
        api_keys_file=api_keys_file,
        tokens_per_day=tokens_per_day,
        requests_per_minute=requests_per_minute,
        state_url=state_url,
        insecure_no_auth=insecure_no_auth,
        metrics_public=metrics_public,
        max_body_bytes=max_body_bytes,
        max_queue=max_queue,
        prompt_slots=prompt_slots,
        parallel=parallel,
        max_output_tokens=max_output_tokens,
        request_timeout_s=request_timeout,
        upstream_url=upstream_url,
        upstream_api_key=upstream_api_key,
        upstream_model=upstream_model,
    )
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

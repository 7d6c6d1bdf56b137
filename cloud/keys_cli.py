"""``relay-cloud usage`` and ``relay-cloud hash-key``: what each key used, and key digests."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["hash_key", "usage"]

err = Console(stderr=True, soft_wrap=True)


def usage(
    state_url: Annotated[
        str | None,
        typer.Option(
            envvar="RELAYLLM_CLOUD_STATE_URL",
            help="Usage store: sqlite:///PATH or postgresql://... (default: the serve default).",
            show_envvar=False,
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3660, help="UTC days, today included.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print what each key used per UTC day (settled requests; reservations as unsettled)."""
    from cloud.state import key_usage, open_store
    from edge.reservations import periods
    from protocol.errors import RelayError

    try:
        store = open_store(state_url)
        try:
            rows = key_usage(store, periods(time.time() - (days - 1) * 86400)[0])
        finally:
            store.close()
    except RelayError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    table = Table("key", "day (UTC)", "requests", "prompt", "output", "total", "USD", "open",
                  title="relay-cloud usage (tokens; open: requests not yet settled)",
                  box=box.SIMPLE_HEAD)  # fmt: skip
    for row in rows:
        total = row.prompt_tokens + row.completion_tokens
        numbers = (row.requests, row.prompt_tokens, row.completion_tokens, total)
        table.add_row(escape(row.key), row.day, *(f"{n:,}" for n in numbers),
                      f"{row.usd:.4f}", str(row.unsettled))  # fmt: skip
    Console().print(table if rows else "no usage recorded in these days")


def hash_key() -> None:
    """Read an API key (from stdin, or a hidden prompt) and print its line for a .toml keys file."""
    from cloud.keys import hash_key as digest

    interactive = sys.stdin.isatty()
    key = (
        typer.prompt("API key", hide_input=True) if interactive else sys.stdin.readline()
    ).strip()
    if not key:
        err.print("[red]error:[/red] no key given: pipe it in or type it at the prompt")
        raise typer.Exit(2)
    typer.echo(f'hash = "{digest(key)}"')

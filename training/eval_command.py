"""The ``relay eval`` command, added to the ``relay`` CLI through the ``relayllm.commands``
entry point (so the edge package never imports this one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from protocol.errors import RelayError

__all__ = ["register"]

out = Console()
err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the ``relay`` command line."""
    app.command("eval")(evaluate)


def evaluate(
    dataset: Annotated[
        str, typer.Option(help="builtin, champ, a .jsonl file or a local dataset folder.")
    ] = "builtin",
    limit: Annotated[int, typer.Option(min=1, help="Questions to use.")] = 50,
    systems: Annotated[
        str, typer.Option(help="Comma-separated: slm, llm, learned, entropy, random.")
    ] = "slm,llm,learned,entropy,random",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the results.")] = Path("eval"),
    slm: Annotated[
        list[str] | None, typer.Option("--slm", help="SLM GGUF (repeat to compare several).")
    ] = None,
    cloud_url: Annotated[str | None, typer.Option(help="Cloud base URL (…/v1).")] = None,
    cloud_key: Annotated[str | None, typer.Option(help="Cloud API key.")] = None,
    cloud_model: Annotated[str | None, typer.Option(help="Cloud model name.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed: the same answers every run.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Questions answered at once.")] = 1,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per answer.")] = 512,
    thresholds: Annotated[
        str, typer.Option(help="Entropy policy thresholds to sweep (nats).")
    ] = "2,3,4,5",
) -> None:
    """Accuracy per cloud token: every system on the same questions, a report and a plot."""
    try:
        plan = _plan(dataset, limit, systems, out_dir, slm, cloud_url, cloud_key, cloud_model,
                     seed, concurrency, max_tokens, thresholds)  # fmt: skip
    except ImportError as exc:
        err.print(f"[red]error:[/red] relay eval needs: pip install 'relayllm[eval]' ({exc.name})")
        raise typer.Exit(1) from exc
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from training.eval_run import run_evaluation

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[figures]}"))  # fmt: skip
    with Progress(*columns, console=err) as bar:
        tasks: dict[str, int] = {}

        def progress(system: str, done: list, total: int) -> None:  # type: ignore[type-arg]
            if system not in tasks:
                tasks[system] = bar.add_task(system, total=total, figures="")
            tokens = sum(r.slm_tokens + r.llm_tokens for r in done)
            figures = (f"accuracy {sum(r.correct for r in done) / len(done):.0%} · call ratio "
                       f"{sum(r.llm_tokens for r in done) / max(1, tokens):.1%}")  # fmt: skip
            bar.update(tasks[system], completed=len(done), figures=figures)

        try:
            report = run_evaluation(plan, progress=progress)
        except RelayError as exc:
            err.print(f"[red]error:[/red] {escape(exc.message)}")
            raise typer.Exit(1) from exc
    for line in report["headlines"].values():  # type: ignore[attr-defined]
        out.print(escape(line.statement))
    out.print(f"report: {plan.out / 'report.md'}")


def _plan(
    dataset: str,
    limit: int,
    systems: str,
    folder: Path,
    slms: list[str] | None,
    cloud_url: str | None,
    cloud_key: str | None,
    cloud_model: str | None,
    seed: int,
    concurrency: int,
    max_tokens: int,
    thresholds: str,
) -> object:
    import math_verify  # noqa: F401 - grading needs it: fail early with the install hint

    from edge.llama import resolve_model
    from edge.runtime import build_cloud
    from edge.settings import EdgeSettings
    from training.eval_run import SYSTEMS, EvalPlan
    from training.problems import load_problems

    chosen = tuple(s.strip() for s in systems.split(",") if s.strip())
    unknown = set(chosen) - set(SYSTEMS)
    if unknown or not chosen:
        raise ValueError(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    flags = {"cloud_url": cloud_url, "cloud_key": cloud_key, "cloud_model": cloud_model}
    settings = EdgeSettings(**{k: v for k, v in flags.items() if v is not None})
    problems = load_problems(dataset, limit=limit, seed=seed)
    return EvalPlan(
        problems=problems,
        slms=[resolve_model(s, default="slm") for s in (slms or [None])],  # type: ignore[list-item]
        cloud=lambda: build_cloud(settings),
        out=folder,
        systems=chosen,
        seed=seed,
        concurrency=concurrency,
        max_tokens=max_tokens,
        thresholds=tuple(float(t) for t in thresholds.split(",")),
        settings={
            "dataset": dataset,
            "cloud": settings.cloud_url,
            "cloud model": settings.cloud_model or "(its first)",
        },
    )

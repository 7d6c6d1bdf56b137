"""``relay stats`` and ``relay cloud check``: what the clouds cost, and whether they work."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from edge.app.cli.common import CLOUD, EDGE, app, fail, out, settings_from
from protocol.errors import RelayError

cloud_app = typer.Typer(help="The clouds the relay calls.", no_args_is_help=True)
app.add_typer(cloud_app, name="cloud")


@app.command()
def stats() -> None:
    """Cloud spend from the ledger: today, this month, and this month by cloud and by model."""
    from rich.table import Table

    from edge.app.ledger import Ledger

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


@EDGE.command(cloud_app, *CLOUD, name="check")
def cloud_check(
    *,
    flags: dict[str, Any],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per cloud.")] = False,
) -> None:
    """Send each configured cloud one tiny continuation of a known partial answer and say
    whether it works as a relay cloud. Exit code 0 when the first cloud works, else 1."""
    import json

    from edge.app.cloud_check import check_clouds

    settings = settings_from(**flags)
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

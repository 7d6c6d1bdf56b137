"""Printing relay events for people, or as JSON lines.

The answer goes to stdout (cloud text in another colour); what a person should
notice but is not the answer goes to stderr, styled: a cloud call that failed
and why, a cloud passed over for the next one and why, a budget that cut or
refused a call, a command that was skipped. The summary line counts calls by
outcome and says which clouds served them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape

from protocol.events import (
    BudgetEvent,
    CallFinished,
    CallSkipped,
    CloudSkipped,
    DoneEvent,
    FallbackEvent,
    RelayEvent,
    TextEvent,
)

__all__ = ["CLOUD_STYLE", "AnswerPrinter", "summary_line"]

CLOUD_STYLE = "bold cyan"
SKIPPED = {
    "zero": "asks for no tokens",
    "empty": "has no number",
    "policy": "the policy does not call",
    "limit": "the answer's call limit is reached",
    "no room": "no token is left in the answer",
}


def summary_line(
    done: DoneEvent, outcomes: Counter[str], served: Counter[str] | None = None, policy: str = ""
) -> str:
    """One line: calls by outcome (and the clouds that served them), ratio, cost, speed, and
    the policy that ran (and why)."""
    tokens = done.slm_tokens + done.llm_tokens
    rate = tokens / done.wall_s if done.wall_s > 0 else 0.0
    calls = ", ".join(
        f"{outcomes[o]} {label}"
        for o, label in (("ok", "ok"), ("fallback", "failed"), ("refused", "refused"))
        if outcomes[o]
    )
    served = Counter({name: n for name, n in (served or Counter()).items() if name})
    if len(served) == 1:
        calls += f" via {next(iter(served))}"
    elif served:
        calls += " via " + ", ".join(f"{name} {n}" for name, n in served.items())
    note = f" · {done.note}" if done.note else ""
    note += f" · policy {policy}" if policy else ""
    return (
        f"calls {calls or '0'} · call ratio {done.call_ratio:.1%} · cost ${done.cost_usd:.4f} · "
        f"{tokens} tokens in {done.wall_s:.1f} s ({rate:.0f} tok/s){note}"
    )


class AnswerPrinter:
    """Streams an answer to ``out`` as its events arrive; notes go to ``notes``; ``policy``
    (what ran, and why) ends the summary line."""

    def __init__(
        self,
        out: Console,
        *,
        notes: Console | None = None,
        as_json: bool = False,
        policy: str = "",
    ) -> None:
        self.out = out
        self.notes = notes or Console(stderr=True)
        self.as_json = as_json
        self.policy = policy
        self.outcomes: Counter[str] = Counter()
        self.served: Counter[str] = Counter()

    def show(self, events: Iterable[RelayEvent]) -> DoneEvent | None:
        """Print every event; return the summary (``None`` if the answer was cut short)."""
        self.outcomes, self.served = Counter(), Counter()
        done = None
        for event in events:
            if isinstance(event, CallFinished):
                self.outcomes[event.outcome] += 1
                if event.outcome == "ok":
                    self.served[event.cloud] += 1
            if self.as_json:
                self.out.out(event.model_dump_json(), highlight=False)
            elif isinstance(event, TextEvent):
                style = CLOUD_STYLE if event.source == "llm" else None
                self.out.out(event.text, style=style, end="", highlight=False)
            else:
                self._note(event)
            if isinstance(event, DoneEvent):
                done = event
                if not self.as_json:
                    self.out.out("")
                    line = summary_line(event, self.outcomes, self.served, self.policy)
                    self.out.print(line, style="dim", highlight=False)
        return done

    def _note(self, event: RelayEvent) -> None:
        if isinstance(event, CloudSkipped):
            self.notes.print(f"\n[yellow]cloud {escape(event.cloud)} skipped:[/yellow] "
                             f"{escape(event.reason)}")  # fmt: skip
        elif isinstance(event, FallbackEvent):
            kept = f" (kept {event.kept_tokens} cloud tokens)" if event.kept_tokens else ""
            self.notes.print(f"\n[yellow]cloud call failed{kept}:[/yellow] {escape(event.reason)}")
        elif isinstance(event, BudgetEvent):
            action = "refused" if event.granted == 0 else f"cut to {event.granted} tokens"
            self.notes.print(f"\n[yellow]budget:[/yellow] call {action} ({escape(event.reason)})")
        elif isinstance(event, CallSkipped):
            self.notes.print(f"[dim]command {escape(event.raw or str(event.requested))} "
                             f"skipped: {SKIPPED[event.reason]}[/dim]")  # fmt: skip

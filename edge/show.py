"""Printing relay events for people (coloured by source, one summary line) or as JSON lines."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console

from protocol.events import DoneEvent, FallbackEvent, RelayEvent, TextEvent

__all__ = ["AnswerPrinter", "summary_line"]

CLOUD_STYLE = "bold cyan"


def summary_line(done: DoneEvent) -> str:
    tokens = done.slm_tokens + done.llm_tokens
    rate = tokens / done.wall_s if done.wall_s > 0 else 0.0
    return (
        f"calls {done.calls} · call ratio {done.call_ratio:.1%} · cost ${done.cost_usd:.4f} · "
        f"{tokens} tokens in {done.wall_s:.1f} s ({rate:.0f} tok/s)"
    )


class AnswerPrinter:
    """Streams an answer to a console as its events arrive."""

    def __init__(self, console: Console, *, as_json: bool = False) -> None:
        self.console = console
        self.as_json = as_json

    def show(self, events: Iterable[RelayEvent]) -> DoneEvent | None:
        done = None
        for event in events:
            if self.as_json:
                self.console.out(event.model_dump_json(), highlight=False)
            elif isinstance(event, TextEvent):
                style = CLOUD_STYLE if event.source == "llm" else None
                self.console.out(event.text, style=style, end="", highlight=False)
            elif isinstance(event, FallbackEvent):
                self.console.out(f" [cloud skipped: {event.reason}] ", style="yellow", end="")
            if isinstance(event, DoneEvent):
                done = event
                if not self.as_json:
                    self.console.out("")
                    self.console.print(summary_line(event), style="dim", highlight=False)
        return done

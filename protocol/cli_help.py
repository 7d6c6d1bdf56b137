"""Help text of the command lines (relay, relay-cloud, relay-train): a flag shows no placeholder.

typer (0.2x) prints the type after every option, flags included (``--offline
<bool>``), which reads as if the flag took a value. :func:`plain_flags` drops it
for flags; options that take a value keep theirs (``--max-tokens <int>``).
``relay``, ``relay-cloud`` and ``relay-train`` call it when their app is made.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plain_flags"]


def plain_flags() -> None:
    """Show flags in ``--help`` without a ``<bool>`` placeholder (idempotent)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "plain_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.plain_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]

"""``relay``: the edge command line (typer + rich). Commands parse flags and call the library.

One module per group of commands (``answers``: run, chat, demo; ``serve``; ``calibrate``;
``clouds``: stats, cloud check; ``models``), all on the one ``app`` of
``common``. Heavy modules (llama.cpp, the HTTP stack, the server) load inside
the commands, so ``relay --help`` answers at once. Exit codes: see ``common``.
"""

from __future__ import annotations

import logging

from edge.app.cli import answers, calibrate, clouds, models, serve  # noqa: F401  (they add commands)
from edge.app.cli.common import app, settings_from

__all__ = ["app", "settings_from"]

log = logging.getLogger(__name__)


def _add_plugin_commands() -> None:
    """Commands other relayllm packages add (``relay eval`` comes with the training package)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="relayllm.commands"):
        try:
            entry.load()(app)
        except ImportError as exc:  # the package is there but not its extra
            log.debug("relay %s unavailable: %s", entry.name, exc)


_add_plugin_commands()

"""Finished answers' KV cells kept for the next request: the embedded engine's prompt cache.

The relay resends each answer's grown context on every call, so the engine
re-uses the cells of the longest prefix it still holds. When an answer ends,
its sequence's cells stay in the shared KV cache as a :class:`Cells` entry
(``slots`` of them, least recently used dropped first, or sooner when a new
request needs their room). A new request picks the held sequence, finished or
still running, that shares the longest prefix with its prompt: a finished one
it extends is taken over in place; otherwise the shared prefix is copied
(``seq_cp`` lets two sequences share cells) and the finished one stays cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge.core.local_model import common_prefix
from edge.llama.model import EXACT_BLOCK

__all__ = ["Cells", "PromptSlots", "Reuse"]


@dataclass
class Cells:
    """The tokens a sequence holds in the KV cache, in order."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    exact: int = 0
    """Leading tokens evaluated in blocks of ``EXACT_BLOCK`` aligned to their positions (the
    same tokens then always give the same logits, whatever else the cache held)."""


@dataclass(frozen=True)
class Reuse:
    """Where a new prompt's first ``count`` tokens are already held: ``source``'s cells;
    ``take_over``: ``source`` is a finished sequence that the new request may extend in place."""

    source: Cells
    count: int
    take_over: bool


class PromptSlots:
    """Finished sequences' cells by sequence id, least recently used first."""

    def __init__(self, slots: int = 4) -> None:
        self.slots = slots
        self._held: OrderedDict[int, Cells] = OrderedDict()
        self.restored = 0
        """Requests that went on from a finished sequence's cells."""

    def __len__(self) -> int:
        return len(self._held)

    @property
    def cells(self) -> int:
        """Cells the finished sequences hold (shared ones counted once per sequence)."""
        return sum(len(c.tokens) for c in self._held.values())

    def best(self, prompt: Sequence[int], exact: bool, running: Iterable[Cells]) -> Reuse | None:
        """The held prefix of ``prompt`` worth re-using, if any; ``exact`` keeps to whole
        aligned blocks (a seeded request's logits then do not depend on the cache)."""
        found: Reuse | None = None
        for cells in [*self._held.values(), *running]:
            count = min(common_prefix(cells.tokens, prompt), len(prompt) - 1)
            if exact:
                count = min(count, cells.exact)
                count -= count % EXACT_BLOCK
            if count > 0 and (found is None or count > found.count):
                mine = cells.seq_id in self._held and count >= len(cells.tokens) // 2
                found = Reuse(cells, count, take_over=mine)
        return found

    def take(self, seq_id: int) -> Cells:
        """Hand a finished sequence over to a new request."""
        self.restored += 1
        return self._held.pop(seq_id)

    def keep(self, cells: Cells) -> list[Cells]:
        """Hold a finished sequence's cells; the ones dropped to stay within ``slots``."""
        self._held[cells.seq_id] = cells
        dropped = []
        while len(self._held) > self.slots:
            dropped.append(self._held.popitem(last=False)[1])
        return dropped

    def get(self, seq_id: int | None) -> Cells | None:
        """The held sequence ``seq_id``, if it is held."""
        return None if seq_id is None else self._held.get(seq_id)

    def clear(self) -> list[Cells]:
        """Stop holding every sequence (the cache is being emptied); the ones dropped."""
        dropped = list(self._held.values())
        self._held.clear()
        return dropped

    def touch(self, seq_id: int) -> None:
        """Mark a held sequence as just used (its prefix was copied)."""
        if seq_id in self._held:
            self._held.move_to_end(seq_id)

    def drop_oldest(self) -> Cells | None:
        """Stop holding the least recently used sequence (its room is needed)."""
        return self._held.popitem(last=False)[1] if self._held else None

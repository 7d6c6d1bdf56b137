"""Several conversations' contexts for one model: the embedded engine's prompt cache.

The relay resends each answer's grown context on every call, so the engine
re-uses its KV cache for the shared prefix. With several users the next
request is often someone else's: :class:`PromptSlots` keeps the last few
contexts set aside (``slots``, least recently used dropped first) and, before
a request, takes up the one that shares the longest prefix with its prompt
when that beats what the live cache shares by ``MIN_GAIN`` tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from edge.core.local_model import common_prefix
from edge.llama import LlamaModel
from edge.llama.model import Snapshot

__all__ = ["MIN_GAIN", "PromptSlots"]

MIN_GAIN = 32
"""Tokens a saved context must share beyond the live one to be worth restoring."""


class PromptSlots:
    """Saved contexts of ``model``, on the model's own thread only."""

    def __init__(self, model: LlamaModel, slots: int = 4) -> None:
        self.model = model
        self.slots = slots
        self._saved: OrderedDict[tuple[int, ...], Snapshot] = OrderedDict()
        self.restored = 0

    def prepare(self, prompt: Sequence[int]) -> None:
        """Before ``prompt`` is synced: keep the live context, take up a better saved one."""
        if self.slots == 0:
            return
        live = self.model.tokens
        live_shared = common_prefix(live, list(prompt))
        best, best_shared = None, live_shared
        for tokens in self._saved:
            shared = common_prefix(list(tokens), list(prompt))
            if shared > best_shared:
                best, best_shared = tokens, shared
        switch = best is not None and best_shared >= live_shared + MIN_GAIN
        if len(live) >= MIN_GAIN and (switch or live_shared < len(live) // 2):
            self._keep(self.model.snapshot())  # the live context would be lost: set it aside
        if switch:
            assert best is not None
            self.model.restore(self._saved.pop(best))
            self.restored += 1

    def _keep(self, snapshot: Snapshot) -> None:
        self._saved.pop(snapshot.tokens, None)
        self._saved[snapshot.tokens] = snapshot
        while len(self._saved) > self.slots:
            self._saved.popitem(last=False)

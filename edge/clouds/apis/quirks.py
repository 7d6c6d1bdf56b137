"""What one cloud refuses, learned from its 400s: request fields to drop, rename or change.

Hosted APIs differ in which documented fields a model takes: OpenAI's reasoning
models refuse ``max_tokens`` (they want ``max_completion_tokens``), any
``temperature`` but the default, ``stop``; Gemini refuses ``prompt_cache_key``;
Mistral wants ``random_seed`` and no ``stream_options``. A request refused with
a 400 that names one of its fields as unknown or unsupported is sent again once
with :meth:`Quirks.learned_from` applied, and the cloud's quirks are remembered,
so the same 400 is never repeated on every call. A 400 about a field's value
(``max_tokens is too large``) teaches nothing and is reported as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from protocol.errors import UpstreamError

__all__ = ["EFFORTS", "Quirks"]

EFFORTS = ("none", "minimal", "low", "medium", "high")
"""Reasoning efforts, least first: a cloud gets the lowest one its model accepts."""
_ESSENTIAL = frozenset({"model", "messages", "prompt", "stream", "system"})
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
_REFUSED = re.compile(
    r"unrecogni[sz]ed|unknown|unsupported|not supported|does not support|not permitted|"
    r"not allowed|extra|cannot find|unexpected|only the default",
    re.IGNORECASE,
)
_BAD_VALUE = re.compile(r"unsupported value|invalid value|does not support '|supported values",
                        re.IGNORECASE)  # fmt: skip


@dataclass(frozen=True)
class Quirks:
    """Edits to every request body of one cloud (keys are the body's own field names).

    ``rename`` maps a field to the name this cloud wants, ``values`` replaces a
    field's value, ``drop`` leaves fields out; ``flags`` are switches an API
    family reads itself (``no-prefill``).
    """

    drop: frozenset[str] = frozenset()
    rename: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` as this cloud takes it."""
        edited: dict[str, Any] = {}
        for key, value in body.items():
            if key in self.drop:
                continue
            edited[self.rename.get(key, key)] = self.values.get(key, value)
        return edited

    def with_flag(self, flag: str) -> Quirks:
        return replace(self, flags=self.flags | {flag})

    def learned_from(
        self, error: UpstreamError, sent: Mapping[str, Any], *, keep: frozenset[str] = frozenset()
    ) -> Quirks | None:
        """The quirks that avoid ``error``, a refusal of the body ``sent``; ``None`` when it
        names no field we may change (``keep`` names the ones a family cannot do without), or
        says nothing about the field being refused."""
        if error.upstream_status not in (400, 422):
            return None
        name = _named_field(error, sent)
        if name is None or name in _ESSENTIAL or name in keep:
            return None
        original = next((k for k, v in self.rename.items() if v == name), name)
        if name in _TOKEN_FIELDS:
            other = _TOKEN_FIELDS[1 - _TOKEN_FIELDS.index(name)]
            if other not in error.reason and not _REFUSED.search(error.reason):
                return None  # a bad value (too large), not a refused field
            rename = {k: v for k, v in self.rename.items() if k != original}
            if original != other:
                rename[original] = other
            return replace(self, rename=rename)
        if not _REFUSED.search(error.reason):
            return None
        if (
            name == "reasoning_effort"
            and _BAD_VALUE.search(error.reason)
            and (effort := _next_effort(error.reason, sent[name]))
        ):
            return replace(self, values={**self.values, original: effort})
        return replace(self, drop=self.drop | {original})

    def to_json(self) -> dict[str, Any]:
        return {"drop": sorted(self.drop), "rename": dict(self.rename),
                "values": dict(self.values), "flags": sorted(self.flags)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Quirks:
        return cls(
            frozenset(data.get("drop", ())), dict(data.get("rename", {})),
            dict(data.get("values", {})), frozenset(data.get("flags", ())),
        )  # fmt: skip


def _named_field(error: UpstreamError, sent: Mapping[str, Any]) -> str | None:
    """The top-level field of ``sent`` the error is about: its ``param``, else the first
    field of ``sent`` its message names (``'stop'``, ``"seed"``, ``seed: Extra inputs``)."""
    if error.param:
        top = re.split(r"[.\[]", error.param, maxsplit=1)[0]  # stream_options.include_usage
        if top in sent and top not in ("messages", "system"):
            return top
    found = [
        (match.start(), key)
        for key in sent
        if (match := re.search(rf"(?<![\w.\[]){re.escape(key)}(?![\w\]])", error.reason))
    ]
    return min(found)[1] if found else None


def _next_effort(reason: str, current: object) -> str | None:
    """The lowest effort the message lists as supported, else the next one up (to ``low``)."""
    listed = reason.partition("upported values")[2]
    supported = [e for e in EFFORTS if f"'{e}'" in listed or f'"{e}"' in listed]
    if supported:
        return supported[0] if supported[0] != current else None
    if current in EFFORTS and EFFORTS.index(str(current)) < EFFORTS.index("low"):
        return EFFORTS[EFFORTS.index(str(current)) + 1]
    return None

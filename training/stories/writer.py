"""The story writer every family fills in: sentences, solution steps, the running value.

Each split's sentences and questions are data (``<split>.json`` beside this file); a
:class:`Plot` tells a family from its opening and that wording.
"""

from __future__ import annotations

import json
import operator
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "NAMES", "Draw", "Family", "Opening", "Plot", "Story", "Then", "Words",
    "between", "part_of_value", "plots", "wording",
]  # fmt: skip

NAMES = (
    "Ava", "Liam", "Noor", "Mateo", "Yuki", "Kofi", "Priya", "Lars", "Amara", "Chen",
    "Sofia", "Omar", "Ines", "Tariq", "Mei", "Diego", "Hana", "Ivan", "Zara", "Felix",
    "Leila", "Arjun", "Nia", "Tomas", "Elif", "Ravi", "Greta", "Kenji", "Lucia", "Sami",
)  # fmt: skip
"""The people in every split's stories."""

OPERATIONS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv,
}  # fmt: skip


class Story:
    """One story being written: its sentences, its solution steps, its running value."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sentences: list[str] = []
        self.steps: list[str] = []
        self.value = 0
        self.words: dict[str, object] = {}

    def pick(self, options: Sequence[str]) -> str:
        return self.rng.choice(options)

    def say(self, wording: str | Sequence[str], **words: object) -> None:
        """Add a sentence in one of the ``wording`` variants."""
        self.words.update(words)
        template = wording if isinstance(wording, str) else self.pick(wording)
        self.sentences.append(template.format(**self.words))

    def ask(self, wording: Sequence[str]) -> str:
        return self.pick(wording).format(**self.words)

    def step(self, reason: str, expression: str, value: int) -> None:
        """A solution line ``reason: expression = value.``; ``value`` becomes the running one."""
        self.steps.append(f"{reason}: {expression} = {value}.")
        self.value = value

    def then(self, wording: str | Sequence[str], reason: str, op: str, **operand: int) -> None:
        """Say a sentence with one new number, ``operand``, and take the step it asks for:
        the running value ``op`` that number (``/`` only where it divides exactly)."""
        ((_, number),) = operand.items()
        if op == "/" and self.value % number:
            raise ValueError(f"{self.value} does not divide by {number}")
        self.say(wording, **operand)
        self.step(reason, f"{self.value} {op} {number}", OPERATIONS[op](self.value, number))

    def continue_to(self, level: int, *later: Then) -> None:
        """Write the first ``level - 1`` of the ``later`` sentences, each with its step: a
        story of a level takes that many steps, and its opening took the first."""
        for then in later[: level - 1]:
            number = then.number(self) if callable(then.number) else then.number
            self.then(then.wording, then.reason, then.op, **{then.name: number})


Draw = Callable[[Story], int]
"""A number drawn when its sentence is written, from the story as it stands by then."""


class Then:
    """A later sentence of a story, with one new number (given, or a :data:`Draw`), and the
    step it asks for (see :meth:`Story.then`)."""

    def __init__(
        self, wording: str | Sequence[str], reason: str, op: str, **operand: int | Draw
    ) -> None:
        ((self.name, self.number),) = operand.items()
        self.wording, self.reason, self.op = wording, reason, op


def between(low: int, high: int) -> Draw:
    """A number from ``low`` to ``high``, both included."""
    return lambda story: story.rng.randint(low, high)


def part_of_value(story: Story) -> int:
    """A number from 1 to one less than the running value."""
    return story.rng.randint(1, story.value - 1)


Family = Callable[[Story, int], str]
"""Writes one problem of a level (1-4 steps) into a story and returns its question."""


Words = dict[str, Any]
"""One family's wording: each sentence's variants (or its one form) by name; a
:class:`Plot`'s ``asks`` holds the variants of each level's question."""


def wording(split: str) -> dict[str, Words]:
    """The wording of ``split``'s families, by family, from ``<split>.json`` beside this file."""
    text = resources.files("training.stories").joinpath(f"{split}.json").read_text(encoding="utf-8")
    return json.loads(text)


Opening = Callable[[Story, int, Words], Iterable[Then]]
"""Writes the first sentence and step of a story of a level in a family's wording, then
yields the later sentences it sets up, in order."""


@dataclass(frozen=True)
class Plot:
    """A family told in three parts: an opening (its first sentence and step), as many of the
    later sentences the opening sets up as the level has further steps, and the question of
    the level from ``words["asks"]`` (where it holds one, that one serves every level)."""

    opening: Opening
    words: Words

    def __call__(self, story: Story, level: int) -> str:
        story.continue_to(level, *self.opening(story, level, self.words))
        asks = self.words["asks"]
        return story.ask(asks[min(level, len(asks)) - 1])


def plots(split: str, **openings: Opening) -> tuple[Plot, ...]:
    """``split``'s families told by ``openings``, each in the wording of its name, in order."""
    words = wording(split)
    return tuple(Plot(opening, words[name]) for name, opening in openings.items())

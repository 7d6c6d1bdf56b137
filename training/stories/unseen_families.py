"""The story families of the unseen split: a bakery, a library, a garden, a bus, a tank, eggs.

Used only for evaluation. They ask for the same arithmetic as the training
families (+, -, * and exact /, one step per level) in stories of other
shapes, and no sentence of theirs (``unseen.json``) is worded like one of
training's, so a model that learned the training wording faces new wording here.
"""

from __future__ import annotations

from collections.abc import Iterator

from training.stories.writer import NAMES, Draw, Story, Then, Words, between, part_of_value, plots

__all__ = ["UNSEEN_FAMILIES"]

PASTRIES = ("muffins", "rolls", "croissants", "bagels", "scones", "buns", "pretzels", "tarts")
STREETS = ("Elm", "Harbour", "Mill", "Station", "Church", "Orchard", "Bridge", "Castle")
CROPS = (("tomato", "tomatoes"), ("pepper", "peppers"), ("cucumber", "cucumbers"),
         ("strawberry", "strawberries"), ("bean", "beans"), ("pumpkin", "pumpkins"))  # fmt: skip


def _leaving_multiple_of(size: int) -> Draw:
    """How many to take from the running value (at least one) so that a multiple of ``size``
    is left."""
    return lambda story: story.value - size * story.rng.randint(1, (story.value - 1) // size)


def _making_multiple_of(size: int) -> Draw:
    """How many to add to the running value (at least one) so that a multiple of ``size``
    results."""
    return lambda story: size - story.value % size + size * story.rng.randint(0, 3)


def _equal_shares(story: Story) -> int:
    """A number of equal shares (2-6) that the running value splits into exactly."""
    return story.rng.choice([m for m in range(2, 7) if story.value % m == 0])


def _bakery(story: Story, level: int, words: Words) -> Iterator[Then]:
    batches, per, pastries = story.rng.randint(2, 8), story.rng.randint(6, 12), story.pick(PASTRIES)
    story.say(words["bakes"], name=story.pick(NAMES), pastries=pastries, batches=batches, per=per)
    story.step(f"The {pastries} baked", f"{batches} * {per}", batches * per)
    size = story.rng.choice([2, 3, 4, 6])
    yield Then(words["sold"], "Still unsold", "-", sold=_leaving_multiple_of(size))
    yield Then(words["boxed"], f"Boxes of {size}", "/", size=size)
    yield Then(words["cafe"], "Money for the boxes", "*", price=between(4, 15))


def _library(story: Story, level: int, words: Words) -> Iterator[Then]:
    n, carts = story.rng.randint(20, 40 * level), story.rng.randint(3, 6)
    story.say(words["opens"], name=story.pick(NAMES), street=story.pick(STREETS), n=n)
    story.value = n
    story.then(words["loans"], "Books left after the loans", "-", out=story.rng.randint(1, n // 2))
    yield Then(words["returns"], "After the returns", "+", back=_making_multiple_of(carts))
    yield Then(words["carts"], "Books on each cart", "/", carts=carts)
    yield Then(words["reading"], "Books on the moved carts", "*", moved=between(2, carts - 1))


def _garden(story: Story, level: int, words: Words) -> Iterator[Then]:
    (crop, produce), beds = story.rng.choice(CROPS), story.rng.randint(2, 6)
    per = story.rng.randint(4, 15)
    story.say(words["plants"], name=story.pick(NAMES), crop=crop, produce=produce, beds=beds,
              per=per)  # fmt: skip
    story.step("Seedlings planted", f"{beds} * {per}", beds * per)
    yield Then(
        words["wilt"], "Plants that survive", "-", died=lambda s: s.rng.randint(2, s.value // 3)
    )
    yield Then(words["yields"], "The harvest", "*", k=between(2, 6))
    yield Then(words["shares"], "One household's share", "/", m=_equal_shares)


def _bus(story: Story, level: int, words: Words) -> Iterator[Then]:
    n = story.rng.randint(3, 10 * level)
    story.say(words["depot"], name=story.pick(NAMES), n=n)
    story.value = n
    story.then(words["board"], "Riders after the first stop", "+", on=story.rng.randint(2, 12))
    yield Then(words["alight"], "Riders after some get off", "-", off=part_of_value)
    yield Then(words["fans"], "With the fans aboard", "*", f=between(2, 3))
    yield Then(words["groups"], "People in each group", "/", m=_equal_shares)


def _tank(story: Story, level: int, words: Words) -> Iterator[Then]:
    rate, minutes = story.rng.randint(3, 20), story.rng.randint(2, 9)
    story.say(words["pumps"], name=story.pick(NAMES), rate=rate, minutes=minutes)
    story.step("Litres pumped in", f"{rate} * {minutes}", rate * minutes)
    k = story.rng.randint(2, 5)
    yield Then(words["drains"], "Litres left in the tank", "-", leak=_leaving_multiple_of(k))
    yield Then(words["barrels"], "Litres in each barrel", "/", k=k)
    yield Then(words["rain"], "After the rain", "+", rain=between(1, 9))


def _eggs(story: Story, level: int, words: Words) -> Iterator[Then]:
    size, cartons = story.rng.choice([6, 10, 12]), story.rng.randint(2, 3 + 2 * level)
    morning = story.rng.randint(1, size * cartons - 1)
    evening = size * cartons - morning
    story.say(words["lays"], name=story.pick(NAMES), morning=morning, evening=evening)
    story.step("Eggs collected", f"{morning} + {evening}", size * cartons)
    yield Then(words["cartons"], f"Cartons of {size}", "/", size=size)
    yield Then(words["kitchen"], "Cartons left to sell", "-", given=between(1, cartons - 1))
    yield Then(words["market"], "Money at the market", "*", price=between(2, 7))


UNSEEN_FAMILIES = plots(
    "unseen", bakery=_bakery, library=_library, garden=_garden, bus=_bus, tank=_tank, eggs=_eggs
)
"""The unseen split's families, in the order the generator draws from; their wording is in
``unseen.json``."""

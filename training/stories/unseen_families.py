"""The story families of the unseen split: a bakery, a library, a garden, a bus, a tank, eggs.

Used only for evaluation. They ask for the same arithmetic as the training
families (+, -, * and exact /, one step per level) in stories of other
shapes, and no sentence here is worded like one of training's, so a model
that learned the training wording faces new wording here.
"""

from __future__ import annotations

from collections.abc import Sequence

from training.stories.writer import NAMES, Draw, Family, Story, Then, between, part_of_value

__all__ = ["UNSEEN_FAMILIES"]

PASTRIES = ("muffins", "rolls", "croissants", "bagels", "scones", "buns", "pretzels", "tarts")
STREETS = ("Elm", "Harbour", "Mill", "Station", "Church", "Orchard", "Bridge", "Castle")
CROPS = (("tomato", "tomatoes"), ("pepper", "peppers"), ("cucumber", "cucumbers"),
         ("strawberry", "strawberries"), ("bean", "beans"), ("pumpkin", "pumpkins"))  # fmt: skip

# The wording of each family: {placeholders} are filled in as the story is written.
BAKES = ("{name} bakes {batches} batches of {pastries}, {per} in each batch.",
         "The bakery oven turns out {batches} trays of {per} {pastries} each this morning.",
         "Before dawn, {name} makes {batches} batches of {per} {pastries}.")  # fmt: skip
SOLD = ("By noon, {sold} {pastries} have been sold.",
        "Customers buy {sold} of them over the counter.")  # fmt: skip
BOXED = ("{name} packs the rest into boxes of {size}, filling every box.",
         "The leftover {pastries} fill boxes of {size} exactly, none left over.")  # fmt: skip
CAFE = ("Each box is sold to a cafe for ${price}.", "A cafe pays ${price} for every box.")
BAKERY_ASKS = (
    ("How many {pastries} are baked?", "How many {pastries} come out of the oven in all?"),
    ("How many {pastries} are still unsold?", "How many {pastries} are left on the counter?"),
    ("How many boxes are filled?", "How many full boxes are there?"),
    ("How many dollars does the bakery get for the boxes?",
     "How much money, in dollars, do the boxes bring in?"),
)  # fmt: skip
OPENS = ("The {street} Street library opens with {n} books on its shelves.",
         "Librarian {name} counts {n} books on the shelves at opening time.")  # fmt: skip
LOANS = ("Readers borrow {out} books during the morning.",
         "{name} checks out {out} books to readers before lunch.")  # fmt: skip
RETURNS = ("In the afternoon, {back} borrowed books are brought back.",
           "{back} books come back through the return slot.")  # fmt: skip
CARTS = ("All the shelved books are then loaded onto {carts} carts, the same number on each.",
         "For a stocktake, the shelved books are shared equally by {carts} carts.")  # fmt: skip
READING = ("{moved} of the carts are wheeled into the reading room.",
           "The reading room receives {moved} of those carts.")  # fmt: skip
LIBRARY_ASKS = (
    ("How many books are left on the shelves?", "How many books remain shelved after the loans?"),
    ("How many books are on the shelves at closing time?",
     "How many books does the library have on its shelves now?"),
    ("How many books are on each cart?", "How many books does one cart carry?"),
    ("How many books end up in the reading room?", "How many books does the reading room get?"),
)  # fmt: skip
PLANTS = ("{name} plants {beds} beds with {per} {crop} seedlings in each.",
          "In spring, {name} sets out {per} {crop} seedlings in each of {beds} beds.")  # fmt: skip
WILT = ("A late frost kills {died} of the seedlings.", "{died} seedlings wilt in a hot week.")
YIELDS = ("Every surviving plant gives {k} {produce} at harvest.",
          "At harvest, each plant that made it bears {k} {produce}.")  # fmt: skip
SHARES = ("{name} shares the harvest equally among {m} households.",
          "The {produce} are divided evenly between {m} households on the street.")  # fmt: skip
GARDEN_ASKS = (
    ("How many seedlings are planted?", "How many {crop} seedlings go into the ground?"),
    ("How many plants survive?", "How many {crop} plants are still alive?"),
    ("How many {produce} are harvested?", "How many {produce} does {name} pick in all?"),
    ("How many {produce} does each household get?", "How many {produce} are in one share?"),
)  # fmt: skip
DEPOT = ("A city bus leaves the depot carrying {n} passengers.",
         "The early bus pulls away from the terminal with {n} people on board.",
         "{name} drives the morning bus, which starts out with {n} riders.")  # fmt: skip
BOARD = ("At the first stop, {on} more passengers climb aboard.",
         "{on} people get on at the market stop.")  # fmt: skip
ALIGHT = ("At the hospital, {off} passengers get off.", "{off} riders step down at the station.")
FANS = ("At the stadium, fans pour in until the bus holds {f} times as many people as before.",
        "A match has ended: at the stadium the number on board grows {f}-fold.")  # fmt: skip
GROUPS = ("At the last stop everyone gets off and splits into {m} equal tour groups.",
          "At the end of the line, the riders form {m} groups of the same size.")  # fmt: skip
BUS_ASKS = (
    ("How many passengers are on the bus after the first stop?", "How many people are riding now?"),
    ("How many passengers are still on board?", "How many people are left on the bus?"),
    ("How many people are on the bus after the stadium?", "How many riders are aboard now?"),
    ("How many people are in each group?", "How big is one group?"),
)  # fmt: skip
PUMPS = (
    "A pump pours {rate} litres a minute into an empty tank for {minutes} minutes.",
    "{name} hoses a dry tank for {minutes} minutes at {rate} litres a minute.",
    "Water runs into an empty tank at {rate} litres per minute for {minutes} minutes.",
)
DRAINS = ("A crack lets {leak} litres drain away.", "{leak} litres run out through the valve.")
BARRELS = ("The rest is shared out evenly into {k} barrels.",
           "{name} empties what is left into {k} barrels, the same amount in each.")  # fmt: skip
RAIN = ("Rain then adds {rain} litres to every barrel.",
        "Later, {rain} more litres are poured into each barrel.")  # fmt: skip
TANK_ASKS = (
    ("How many litres are in the tank?", "How much water, in litres, has been pumped in?"),
    ("How many litres remain in the tank?", "How much water is left, in litres?"),
    ("How many litres go into each barrel?", "How much water does one barrel get, in litres?"),
    ("How many litres does each barrel hold now?",
     "How much water is in one barrel at the end, in litres?"),
)  # fmt: skip
LAYS = ("{name}'s hens lay {morning} eggs in the morning and {evening} more in the evening.",
        "Farmer {name} gathers {morning} eggs at sunrise and {evening} at sunset.")  # fmt: skip
CARTONS = ("The eggs are packed into cartons of {size}, with none left over.",
           "{name} fills cartons that take {size} eggs each, using every egg.")  # fmt: skip
KITCHEN = ("{given} cartons are set aside for the farm's own kitchen.",
           "The kitchen keeps {given} of the cartons for itself.")  # fmt: skip
MARKET = ("At the market each carton fetches ${price}.",
          "Every carton sells for ${price} at the Saturday market.")  # fmt: skip
EGG_ASKS = (
    ("How many eggs are collected that day?", "How many eggs does the farm gather in all?"),
    ("How many cartons are filled?", "How many full cartons of eggs are there?"),
    ("How many cartons are left to sell?", "How many cartons can still be sold?"),
    ("How many dollars does the farm take in at the market?",
     "How much money, in dollars, do the cartons bring?"),
)  # fmt: skip


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


def _ask(story: Story, asks: Sequence[Sequence[str]], level: int) -> str:
    return story.ask(asks[level - 1])


def _bakery(story: Story, level: int) -> str:
    batches, per, pastries = story.rng.randint(2, 8), story.rng.randint(6, 12), story.pick(PASTRIES)
    story.say(BAKES, name=story.pick(NAMES), pastries=pastries, batches=batches, per=per)
    story.step(f"The {pastries} baked", f"{batches} * {per}", batches * per)
    size = story.rng.choice([2, 3, 4, 6])
    story.continue_to(
        level,
        Then(SOLD, "Still unsold", "-", sold=_leaving_multiple_of(size)),
        Then(BOXED, f"Boxes of {size}", "/", size=size),
        Then(CAFE, "Money for the boxes", "*", price=between(4, 15)),
    )
    return _ask(story, BAKERY_ASKS, level)


def _library(story: Story, level: int) -> str:
    n, carts = story.rng.randint(20, 40 * level), story.rng.randint(3, 6)
    story.say(OPENS, name=story.pick(NAMES), street=story.pick(STREETS), n=n)
    story.value = n
    story.then(LOANS, "Books left after the loans", "-", out=story.rng.randint(1, n // 2))
    story.continue_to(
        level,
        Then(RETURNS, "After the returns", "+", back=_making_multiple_of(carts)),
        Then(CARTS, "Books on each cart", "/", carts=carts),
        Then(READING, "Books on the moved carts", "*", moved=between(2, carts - 1)),
    )
    return _ask(story, LIBRARY_ASKS, level)


def _garden(story: Story, level: int) -> str:
    (crop, produce), beds = story.rng.choice(CROPS), story.rng.randint(2, 6)
    per = story.rng.randint(4, 15)
    story.say(PLANTS, name=story.pick(NAMES), crop=crop, produce=produce, beds=beds, per=per)
    story.step("Seedlings planted", f"{beds} * {per}", beds * per)
    story.continue_to(
        level,
        Then(WILT, "Plants that survive", "-", died=lambda s: s.rng.randint(2, s.value // 3)),
        Then(YIELDS, "The harvest", "*", k=between(2, 6)),
        Then(SHARES, "One household's share", "/", m=_equal_shares),
    )
    return _ask(story, GARDEN_ASKS, level)


def _bus(story: Story, level: int) -> str:
    n = story.rng.randint(3, 10 * level)
    story.say(DEPOT, name=story.pick(NAMES), n=n)
    story.value = n
    story.then(BOARD, "Riders after the first stop", "+", on=story.rng.randint(2, 12))
    story.continue_to(
        level,
        Then(ALIGHT, "Riders after some get off", "-", off=part_of_value),
        Then(FANS, "With the fans aboard", "*", f=between(2, 3)),
        Then(GROUPS, "People in each group", "/", m=_equal_shares),
    )
    return _ask(story, BUS_ASKS, level)


def _tank(story: Story, level: int) -> str:
    rate, minutes = story.rng.randint(3, 20), story.rng.randint(2, 9)
    story.say(PUMPS, name=story.pick(NAMES), rate=rate, minutes=minutes)
    story.step("Litres pumped in", f"{rate} * {minutes}", rate * minutes)
    k = story.rng.randint(2, 5)
    story.continue_to(
        level,
        Then(DRAINS, "Litres left in the tank", "-", leak=_leaving_multiple_of(k)),
        Then(BARRELS, "Litres in each barrel", "/", k=k),
        Then(RAIN, "After the rain", "+", rain=between(1, 9)),
    )
    return _ask(story, TANK_ASKS, level)


def _eggs(story: Story, level: int) -> str:
    size, cartons = story.rng.choice([6, 10, 12]), story.rng.randint(2, 3 + 2 * level)
    morning = story.rng.randint(1, size * cartons - 1)
    evening = size * cartons - morning
    story.say(LAYS, name=story.pick(NAMES), morning=morning, evening=evening)
    story.step("Eggs collected", f"{morning} + {evening}", size * cartons)
    story.continue_to(
        level,
        Then(CARTONS, f"Cartons of {size}", "/", size=size),
        Then(KITCHEN, "Cartons left to sell", "-", given=between(1, cartons - 1)),
        Then(MARKET, "Money at the market", "*", price=between(2, 7)),
    )
    return _ask(story, EGG_ASKS, level)


UNSEEN_FAMILIES: tuple[Family, ...] = (_bakery, _library, _garden, _bus, _tank, _eggs)
"""The unseen split's families, in the order the generator draws from."""

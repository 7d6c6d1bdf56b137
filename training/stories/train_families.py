"""The story families of the training split: collections, shopping, travel, savings, rows.

Their wording (``train.json``) and the random draws they make fix every
training problem a seed gives, so a change to either changes the problems of
runs already made.
"""

from __future__ import annotations

from collections.abc import Iterator

from training.stories.writer import (
    NAMES,
    Family,
    Story,
    Then,
    Words,
    between,
    part_of_value,
    plots,
    wording,
)

__all__ = ["TRAIN_FAMILIES"]

THINGS = (
    "apples", "marbles", "stickers", "pencils", "books", "cookies", "shells", "stamps",
    "coins", "beads", "cards", "seeds", "buttons", "candles", "postcards", "tomatoes",
)  # fmt: skip
HOLDERS = ("boxes", "bags", "baskets", "jars", "shelves", "crates", "envelopes", "trays")
GOODS = ("notebooks", "pens", "mugs", "tickets", "sandwiches", "plants", "scarves", "lamps")
VEHICLES = ("train", "bus", "cyclist", "boat", "car", "runner", "truck", "hiker")
PLACES = ("table", "shelf", "stall", "tray", "window display", "garden bed")

WORDS = wording("train")
"""Each family's sentences and questions (``train.json``)."""
COLLECTION, SHOPPING = WORDS["collection"], WORDS["shopping"]


def _collection(story: Story, level: int) -> str:
    start = story.rng.randint(3, 12 * level)
    story.value = start
    story.say(COLLECTION["has"], name=story.pick(NAMES), things=story.pick(THINGS), n=start)
    for _ in range(level):
        op, x = story.pick(["add", "sub", "mul", "div"]), story.value
        divisors = [k for k in (2, 3, 4, 5) if x % k == 0]
        if op == "div" and divisors:
            k, holder = story.pick(divisors), story.pick(HOLDERS)
            story.say(COLLECTION["split"], k=k, holder=holder)
            story.step(f"Each of the {k} {holder} gets", f"{x} / {k}", x // k)
            story.say(COLLECTION["keep_one"])
        elif op in ("mul", "div"):
            k = story.rng.randint(2, 4)
            story.say(
                COLLECTION["times"], k=k, word={2: "doubles", 3: "triples", 4: "quadruples"}[k]
            )
            story.step(f"After multiplying by {k}", f"{x} * {k}", x * k)
        elif op == "sub" and x > 2:
            b = story.rng.randint(1, x - 1)
            story.say(COLLECTION["lose"], b=b)
            story.step(f"After losing {b}", f"{x} - {b}", x - b)
        else:
            b = story.rng.randint(2, 15 * level)
            story.say(COLLECTION["gain"], b=b)
            story.step(f"After getting {b} more", f"{x} + {b}", x + b)
    return story.ask(COLLECTION["how_many"])


def _shopping(story: Story, level: int) -> str:
    goods, price, count = story.pick(GOODS), story.rng.randint(2, 9), story.rng.randint(2, 6)
    story.say(SHOPPING["buy"], name=story.pick(NAMES), goods=goods, price=price, count=count)
    story.step(f"The {goods} cost", f"{count} * {price}", count * price)
    if level >= 2:
        other, extra = story.pick([g for g in GOODS if g != goods]), story.rng.randint(1, 12)
        story.say(SHOPPING["also_buy"], other=other, extra=extra)
        story.step(f"Adding the {other}", f"{story.value} + {extra}", story.value + extra)
    if level >= 3:
        coupon = story.rng.randint(1, max(1, story.value // 3))
        story.then(SHOPPING["coupon"], "With the coupon", "-", coupon=coupon)
    if level < 4:
        return story.ask(SHOPPING["spend"])
    paid = (story.value // 10 + 1) * 10 + story.rng.choice([0, 10, 20])
    story.say(SHOPPING["pays"], paid=paid)
    story.step("The change is", f"{paid} - {story.value}", paid - story.value)
    return story.ask(SHOPPING["change"])


def _travel(story: Story, level: int, words: Words) -> Iterator[Then]:
    vehicle, hours = story.pick(VEHICLES), story.rng.randint(2, 5)
    speed = story.rng.randint(3, 20) * (5 if vehicle in ("train", "car") else 1)
    story.say(words["moves"], vehicle=vehicle, speed=speed, hours=hours)
    story.step("Distance in the first part", f"{speed} * {hours}", speed * hours)
    yield Then(words["further"], "Adding the extra distance", "+", more=between(5, 40))
    yield Then(words["turn_back"], "Net distance from the start", "-", back=part_of_value)
    yield Then(words["repeat_trip"], "Twice the trip", "*", trips=2)


def _savings(story: Story, level: int, words: Words) -> Iterator[Then]:
    weekly, weeks = story.rng.randint(3, 25), story.rng.randint(2, 8)
    story.say(words["saves"], name=story.pick(NAMES), weekly=weekly, weeks=weeks)
    story.step("Money saved", f"{weekly} * {weeks}", weekly * weeks)
    yield Then(words["gift"], "With the gift", "+", gift=between(5, 50))
    yield Then(words["present"], "After the present", "-", spent=part_of_value)
    yield Then(words["matched"], "Tripled", "*", match=3)


def _rows(story: Story, level: int, words: Words) -> Iterator[Then]:
    rows, per_row, place = story.rng.randint(2, 9), story.rng.randint(3, 12), story.pick(PLACES)
    story.say(words["rows"], name=story.pick(NAMES), things=story.pick(THINGS), rows=rows,
              per_row=per_row, place=place)  # fmt: skip
    story.step("Items in the rows", f"{rows} * {per_row}", rows * per_row)
    yield Then(words["beside"], "Adding the ones beside", "+", extra=between(2, 20))
    yield Then(words["visitors"], "After the visitors", "-", taken=part_of_value)
    yield Then(words["second"], f"Two of the {place}s", "*", copies=2)


TRAIN_FAMILIES: tuple[Family, ...] = (
    _collection,
    _shopping,
    *plots("train", travel=_travel, savings=_savings, rows=_rows),
)
"""The training split's families, in the order the generator draws from; their wording is in
``train.json``."""

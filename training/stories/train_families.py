"""The story families of the training split: collections, shopping, travel, savings, rows.

Their wording and the random draws they make fix every training problem a
seed gives, so a change here changes the problems of runs already made.
"""

from __future__ import annotations

from training.stories.writer import NAMES, Family, Story, Then, between, part_of_value

__all__ = ["TRAIN_FAMILIES"]

THINGS = (
    "apples", "marbles", "stickers", "pencils", "books", "cookies", "shells", "stamps",
    "coins", "beads", "cards", "seeds", "buttons", "candles", "postcards", "tomatoes",
)  # fmt: skip
HOLDERS = ("boxes", "bags", "baskets", "jars", "shelves", "crates", "envelopes", "trays")
GOODS = ("notebooks", "pens", "mugs", "tickets", "sandwiches", "plants", "scarves", "lamps")
VEHICLES = ("train", "bus", "cyclist", "boat", "car", "runner", "truck", "hiker")
PLACES = ("table", "shelf", "stall", "tray", "window display", "garden bed")

# The wording of each story family: {placeholders} are filled in by the generator.
HAS = ("{name} has {n} {things}.", "{name} starts the day with {n} {things}.",
       "There are {n} {things} in {name}'s collection.")  # fmt: skip
SPLIT = ("{name} splits them equally into {k} {holder}.",
         "Then the {things} are shared evenly among {k} {holder}.")  # fmt: skip
KEEP_ONE = "From now on, {name} keeps only one of the {holder}."
TIMES = ("Then the number of {things} {word}.",
         "After a trade, {name} has {k} times as many {things}.")  # fmt: skip
LOSE = ("{name} gives away {b} of them.", "{b} of the {things} get lost.",
        "{name} uses {b} {things} for a project.")  # fmt: skip
GAIN = ("A friend gives {name} {b} more {things}.", "{name} finds {b} more.",
        "{name} buys another {b} {things}.")  # fmt: skip
HOW_MANY = ("How many {things} does {name} have now?", "How many {things} are left at the end?",
            "What is the final number of {things}?")  # fmt: skip
BUY = ("{name} buys {count} {goods} at ${price} each.",
       "{name} picks {count} {goods}, each costing ${price}.")  # fmt: skip
ALSO_BUY = ("{name} also buys {other} for ${extra} in total.",
            "On the way out, {name} adds {other} worth ${extra}.")  # fmt: skip
COUPON = "A coupon takes ${coupon} off the bill."
PAYS = "{name} pays with ${paid}."
CHANGE = ("How much change, in dollars, does {name} get?", "How many dollars does {name} get back?")
SPEND = ("How much does {name} spend, in dollars?", "What is {name}'s total bill in dollars?")
MOVES = ("A {vehicle} moves at {speed} km per hour for {hours} hours.",
         "For {hours} hours, a {vehicle} keeps a steady {speed} km/h.")  # fmt: skip
FURTHER = "Then it covers another {more} km."
TURN_BACK = "It has to turn back for {back} km to pick something up."
REPEAT_TRIP = "The whole trip is then repeated once more, exactly the same."
HOW_FAR = ("How many kilometres is it from the start now?",
           "How far from the starting point is it, in km?")  # fmt: skip
SAVES = ("{name} saves ${weekly} every week for {weeks} weeks.",
         "Each week, {name} puts ${weekly} into a jar, for {weeks} weeks.")  # fmt: skip
GIFT = "A relative adds ${gift} as a gift."
PRESENT = "{name} then spends ${spent} on a present."
MATCHED = "Finally the money is tripled by a matching program."
HOW_RICH = ("How many dollars does {name} have?", "How much money is in the jar?")
ROWS = ("A {place} holds {rows} rows of {per_row} {things}.",
        "The {things} are laid out in {rows} rows, {per_row} in each.",
        "{name} arranges {things} on a {place}: {rows} rows with {per_row} in every row.",
        "On the {place} there are {rows} neat rows of {per_row} {things} each.")  # fmt: skip
BESIDE = "{extra} more {things} sit beside the rows."
VISITORS = "Visitors take {taken} of them."
SECOND = "A second, identical {place} is set up next to it."
HOW_MANY_LEFT = ("How many {things} are there now?", "How many {things} remain?")


def _collection(story: Story, level: int) -> str:
    start = story.rng.randint(3, 12 * level)
    story.value = start
    story.say(HAS, name=story.pick(NAMES), things=story.pick(THINGS), n=start)
    for _ in range(level):
        op, x = story.pick(["add", "sub", "mul", "div"]), story.value
        divisors = [k for k in (2, 3, 4, 5) if x % k == 0]
        if op == "div" and divisors:
            k, holder = story.pick(divisors), story.pick(HOLDERS)
            story.say(SPLIT, k=k, holder=holder)
            story.step(f"Each of the {k} {holder} gets", f"{x} / {k}", x // k)
            story.say(KEEP_ONE)
        elif op in ("mul", "div"):
            k = story.rng.randint(2, 4)
            story.say(TIMES, k=k, word={2: "doubles", 3: "triples", 4: "quadruples"}[k])
            story.step(f"After multiplying by {k}", f"{x} * {k}", x * k)
        elif op == "sub" and x > 2:
            b = story.rng.randint(1, x - 1)
            story.say(LOSE, b=b)
            story.step(f"After losing {b}", f"{x} - {b}", x - b)
        else:
            b = story.rng.randint(2, 15 * level)
            story.say(GAIN, b=b)
            story.step(f"After getting {b} more", f"{x} + {b}", x + b)
    return story.ask(HOW_MANY)


def _shopping(story: Story, level: int) -> str:
    goods, price, count = story.pick(GOODS), story.rng.randint(2, 9), story.rng.randint(2, 6)
    story.say(BUY, name=story.pick(NAMES), goods=goods, price=price, count=count)
    story.step(f"The {goods} cost", f"{count} * {price}", count * price)
    if level >= 2:
        other, extra = story.pick([g for g in GOODS if g != goods]), story.rng.randint(1, 12)
        story.say(ALSO_BUY, other=other, extra=extra)
        story.step(f"Adding the {other}", f"{story.value} + {extra}", story.value + extra)
    if level >= 3:
        coupon = story.rng.randint(1, max(1, story.value // 3))
        story.then(COUPON, "With the coupon", "-", coupon=coupon)
    if level < 4:
        return story.ask(SPEND)
    paid = (story.value // 10 + 1) * 10 + story.rng.choice([0, 10, 20])
    story.say(PAYS, paid=paid)
    story.step("The change is", f"{paid} - {story.value}", paid - story.value)
    return story.ask(CHANGE)


def _travel(story: Story, level: int) -> str:
    vehicle, hours = story.pick(VEHICLES), story.rng.randint(2, 5)
    speed = story.rng.randint(3, 20) * (5 if vehicle in ("train", "car") else 1)
    story.say(MOVES, vehicle=vehicle, speed=speed, hours=hours)
    story.step("Distance in the first part", f"{speed} * {hours}", speed * hours)
    story.continue_to(
        level,
        Then(FURTHER, "Adding the extra distance", "+", more=between(5, 40)),
        Then(TURN_BACK, "Net distance from the start", "-", back=part_of_value),
        Then(REPEAT_TRIP, "Twice the trip", "*", trips=2),
    )
    return story.ask(HOW_FAR)


def _savings(story: Story, level: int) -> str:
    weekly, weeks = story.rng.randint(3, 25), story.rng.randint(2, 8)
    story.say(SAVES, name=story.pick(NAMES), weekly=weekly, weeks=weeks)
    story.step("Money saved", f"{weekly} * {weeks}", weekly * weeks)
    story.continue_to(
        level,
        Then(GIFT, "With the gift", "+", gift=between(5, 50)),
        Then(PRESENT, "After the present", "-", spent=part_of_value),
        Then(MATCHED, "Tripled", "*", match=3),
    )
    return story.ask(HOW_RICH)


def _rows(story: Story, level: int) -> str:
    rows, per_row, place = story.rng.randint(2, 9), story.rng.randint(3, 12), story.pick(PLACES)
    story.say(ROWS, name=story.pick(NAMES), things=story.pick(THINGS), rows=rows,
              per_row=per_row, place=place)  # fmt: skip
    story.step("Items in the rows", f"{rows} * {per_row}", rows * per_row)
    story.continue_to(
        level,
        Then(BESIDE, "Adding the ones beside", "+", extra=between(2, 20)),
        Then(VISITORS, "After the visitors", "-", taken=part_of_value),
        Then(SECOND, f"Two of the {place}s", "*", copies=2),
    )
    return story.ask(HOW_MANY_LEFT)


TRAIN_FAMILIES: tuple[Family, ...] = (_collection, _shopping, _travel, _savings, _rows)
"""The training split's families, in the order the generator draws from."""

"""Problems with verifiable answers: a built-in generator, JSONL files, local dataset folders.

The built-in generator makes small multi-step arithmetic word problems, seeded
and offline, with a worked solution ending in ``\\boxed{answer}``. Difficulty
is the number of steps (levels 1-4). Wording varies: several story families
(a collection that grows and shrinks, shopping with change, travel at a
speed, savings, rows and groups), many names, objects, units and phrasings,
so a model does not learn one template.

:func:`load_problems` reads ``builtin``, ``champ`` (the competition problems
of the ``champ-dataset`` package), a JSONL file (``question`` and
``answer`` per line) or a local Hugging Face dataset folder (GSM8K or MATH
style: ``question``/``problem`` and ``answer``/``solution``; ``#### 42`` and
``\\boxed{42}`` answers are read to ``42``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "PROMPT_SUFFIX",
    "Problem",
    "generate",
    "load_problems",
    "messages_for",
    "reference_answer",
    "write_problems",
]

PROMPT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
"""The method's instruction after every question."""


@dataclass(frozen=True)
class Problem:
    """A question, its reference answer and (for generated ones) a worked solution."""

    question: str
    answer: str
    solution: str = ""
    level: int = 0
    id: str = ""

    def with_id(self) -> Problem:
        digest = hashlib.sha256(self.question.encode()).hexdigest()[:12]
        return Problem(self.question, self.answer, self.solution, self.level, digest)


def messages_for(problem: Problem) -> list[dict[str, str]]:
    """The conversation that asks ``problem``, as training and evaluation send it."""
    return [{"role": "user", "content": f"{problem.question}\n{PROMPT_SUFFIX}"}]


NAMES = (
    "Ava", "Liam", "Noor", "Mateo", "Yuki", "Kofi", "Priya", "Lars", "Amara", "Chen",
    "Sofia", "Omar", "Ines", "Tariq", "Mei", "Diego", "Hana", "Ivan", "Zara", "Felix",
    "Leila", "Arjun", "Nia", "Tomas", "Elif", "Ravi", "Greta", "Kenji", "Lucia", "Sami",
)  # fmt: skip
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


class _Story:
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
        self.steps.append(f"{reason}: {expression} = {value}.")
        self.value = value


def _collection(story: _Story, level: int) -> str:
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


def _shopping(story: _Story, level: int) -> str:
    goods, price, count = story.pick(GOODS), story.rng.randint(2, 9), story.rng.randint(2, 6)
    story.say(BUY, name=story.pick(NAMES), goods=goods, price=price, count=count)
    story.step(f"The {goods} cost", f"{count} * {price}", count * price)
    if level >= 2:
        other, extra = story.pick([g for g in GOODS if g != goods]), story.rng.randint(1, 12)
        story.say(ALSO_BUY, other=other, extra=extra)
        story.step(f"Adding the {other}", f"{story.value} + {extra}", story.value + extra)
    if level >= 3:
        coupon = story.rng.randint(1, max(1, story.value // 3))
        story.say(COUPON, coupon=coupon)
        story.step("With the coupon", f"{story.value} - {coupon}", story.value - coupon)
    if level < 4:
        return story.ask(SPEND)
    paid = (story.value // 10 + 1) * 10 + story.rng.choice([0, 10, 20])
    story.say(PAYS, paid=paid)
    story.step("The change is", f"{paid} - {story.value}", paid - story.value)
    return story.ask(CHANGE)


def _travel(story: _Story, level: int) -> str:
    vehicle, hours = story.pick(VEHICLES), story.rng.randint(2, 5)
    speed = story.rng.randint(3, 20) * (5 if vehicle in ("train", "car") else 1)
    story.say(MOVES, vehicle=vehicle, speed=speed, hours=hours)
    story.step("Distance in the first part", f"{speed} * {hours}", speed * hours)
    if level >= 2:
        more = story.rng.randint(5, 40)
        story.say(FURTHER, more=more)
        story.step("Adding the extra distance", f"{story.value} + {more}", story.value + more)
    if level >= 3:
        back = story.rng.randint(1, story.value - 1)
        story.say(TURN_BACK, back=back)
        story.step("Net distance from the start", f"{story.value} - {back}", story.value - back)
    if level >= 4:
        story.say(REPEAT_TRIP)
        story.step("Twice the trip", f"{story.value} * 2", story.value * 2)
    return story.ask(HOW_FAR)


def _savings(story: _Story, level: int) -> str:
    weekly, weeks = story.rng.randint(3, 25), story.rng.randint(2, 8)
    story.say(SAVES, name=story.pick(NAMES), weekly=weekly, weeks=weeks)
    story.step("Money saved", f"{weekly} * {weeks}", weekly * weeks)
    if level >= 2:
        gift = story.rng.randint(5, 50)
        story.say(GIFT, gift=gift)
        story.step("With the gift", f"{story.value} + {gift}", story.value + gift)
    if level >= 3:
        spent = story.rng.randint(1, story.value - 1)
        story.say(PRESENT, spent=spent)
        story.step("After the present", f"{story.value} - {spent}", story.value - spent)
    if level >= 4:
        story.say(MATCHED)
        story.step("Tripled", f"{story.value} * 3", story.value * 3)
    return story.ask(HOW_RICH)


def _rows(story: _Story, level: int) -> str:
    rows, per_row, place = story.rng.randint(2, 9), story.rng.randint(3, 12), story.pick(PLACES)
    story.say(ROWS, name=story.pick(NAMES), things=story.pick(THINGS), rows=rows,
              per_row=per_row, place=place)  # fmt: skip
    story.step("Items in the rows", f"{rows} * {per_row}", rows * per_row)
    if level >= 2:
        extra = story.rng.randint(2, 20)
        story.say(BESIDE, extra=extra)
        story.step("Adding the ones beside", f"{story.value} + {extra}", story.value + extra)
    if level >= 3:
        taken = story.rng.randint(1, story.value - 1)
        story.say(VISITORS, taken=taken)
        story.step("After the visitors", f"{story.value} - {taken}", story.value - taken)
    if level >= 4:
        story.say(SECOND)
        story.step(f"Two of the {place}s", f"{story.value} * 2", story.value * 2)
    return story.ask(HOW_MANY_LEFT)


FAMILIES: tuple[Callable[[_Story, int], str], ...] = (
    _collection, _shopping, _travel, _savings, _rows,
)  # fmt: skip


def generate(count: int, *, seed: int = 0, levels: Iterable[int] = (1, 2, 3)) -> list[Problem]:
    """``count`` distinct problems, reproducible from ``seed``, spread over ``levels`` (1-4)."""
    levels = tuple(levels)
    if not levels or not set(levels) <= {1, 2, 3, 4}:
        raise ValueError(f"levels must be among 1, 2, 3, 4, not {levels}")
    rng = random.Random(seed)
    problems: dict[str, Problem] = {}
    for _attempt in range(count * 20):
        if len(problems) == count:
            break
        level = levels[len(problems) % len(levels)]
        story = _Story(rng)
        ask = rng.choice(FAMILIES)(story, level)
        question = " ".join([*story.sentences, ask])
        solution = "\n".join([*story.steps, f"The answer is \\boxed{{{story.value}}}."])
        problem = Problem(question, str(story.value), solution, level).with_id()
        problems.setdefault(problem.id, problem)
    return list(problems.values())


def write_problems(problems: Iterable[Problem], path: Path) -> Path:
    """Save problems as JSONL (the expert engine's ``--problems`` file, a dataset to re-use)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for problem in problems:
            out.write(json.dumps(asdict(problem), ensure_ascii=False) + "\n")
    return path


def reference_answer(text: str) -> str:
    """The final answer in a reference: after ``####``, inside the last ``\\boxed{}``, or as is."""
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = _last_boxed(text)
    return boxed if boxed is not None else text.strip()


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start == -1:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for i in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth < 0:
            return text[begin:i].strip()
    return None


def load_problems(
    spec: str, *, limit: int | None = None, seed: int = 0, levels: Iterable[int] = (1, 2, 3)
) -> list[Problem]:
    """Problems from ``builtin``, a ``.jsonl`` file or a local dataset folder."""
    if spec == "builtin":
        return generate(limit or 1000, seed=seed, levels=levels)
    if spec == "champ":
        return _champ(limit)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"no dataset at {spec!r}: give 'builtin', a .jsonl file or a folder"
        )
    rows = _jsonl(path) if path.is_file() else _dataset_folder(path)
    problems = []
    for number, row in enumerate(rows, 1):
        question = _field(row, ("question", "problem", "input", "prompt"))
        answer = _field(row, ("answer", "solution", "output", "target"))
        if question is None or answer is None:
            raise ValueError(f"{spec}: record {number} has no question/problem or answer/solution")
        solution = str(row.get("solution", "")) if "answer" in row else ""
        level = row.get("level") if isinstance(row.get("level"), int) else 0
        problems.append(Problem(question, reference_answer(answer), solution, level).with_id())
        if limit is not None and len(problems) >= limit:
            break
    return problems


def _champ(limit: int | None) -> list[Problem]:
    """CHAMP's competition problems, from the ``champ-dataset`` package's data file."""
    import importlib.util

    spec = importlib.util.find_spec("champ_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the champ dataset needs: pip install champ-dataset")
    folder = Path(next(iter(spec.submodule_search_locations)))
    data = json.loads((folder / "dataset_files" / "v0.json").read_text(encoding="utf-8"))
    problems = [
        Problem(str(item["_text"]), str(item["_answer"]), level=0).with_id()
        for item in data["problems"].values()
    ]
    return problems[:limit] if limit is not None else problems


def _field(row: dict[str, object], names: Sequence[str]) -> str | None:
    for name in names:
        value = row.get(name)
        if isinstance(value, str | int | float) and str(value).strip():
            return str(value)
    return None


def _jsonl(path: Path) -> list[dict[str, object]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON object ({exc})") from exc
    return rows


def _dataset_folder(path: Path) -> list[dict[str, object]]:
    """A folder saved with ``save_to_disk``, or one of data files (json, jsonl, parquet, csv)."""
    import datasets

    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        loaded = datasets.load_from_disk(str(path))
    else:
        loaded = datasets.load_dataset(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        split = "test" if "test" in loaded else next(iter(loaded))
        loaded = loaded[split]
    return [dict(row) for row in loaded]

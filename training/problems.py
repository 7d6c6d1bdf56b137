"""Problems with verifiable answers: a built-in generator, JSONL files, local dataset folders.

The built-in generator makes small multi-step arithmetic word problems, seeded
and offline, with a worked solution ending in ``\\boxed{answer}``. Difficulty
is the number of steps (levels 1-4). Wording varies: several story families
(:mod:`training.stories`), many names, objects, units and phrasings, so a
model does not learn one template. The ``train`` split (a collection that
grows and shrinks, shopping with change, travel at a speed, savings, rows and
groups) is for training; the ``unseen`` split (a bakery, a library, a garden,
a bus, a water tank, a farm's eggs) asks for the same arithmetic in stories
and sentences training never sees, to measure how far learning carries.

:func:`load_problems` reads ``builtin`` (the train split), ``unseen``,
``champ`` (the competition problems of the ``champ-dataset`` package), a
JSONL file (``question`` and ``answer`` per line) or a local Hugging Face
dataset folder (GSM8K or MATH style: ``question``/``problem`` and
``answer``/``solution``; ``#### 42`` and ``\\boxed{42}`` answers are read to
``42``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from training.stories import FAMILIES, SPLITS, Story

__all__ = [
    "PROMPT_SUFFIX",
    "SPLITS",
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


def generate(
    count: int, *, seed: int = 0, levels: Iterable[int] = (1, 2, 3), split: str = "train"
) -> list[Problem]:
    """``count`` distinct problems of ``split``, reproducible from ``seed``, spread over
    ``levels`` (1-4). The splits share no sentence, so no question is in both."""
    levels = tuple(levels)
    if not levels or not set(levels) <= {1, 2, 3, 4}:
        raise ValueError(f"levels must be among 1, 2, 3, 4, not {levels}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    # the training split keeps the plain seed, so its problems stay those of earlier runs
    rng = random.Random(seed if split == "train" else f"{split}:{seed}")
    problems: dict[str, Problem] = {}
    for _attempt in range(count * 20):
        if len(problems) == count:
            break
        level = levels[len(problems) % len(levels)]
        story = Story(rng)
        ask = rng.choice(FAMILIES[split])(story, level)
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
    """Problems from ``builtin``, ``unseen``, ``champ``, a ``.jsonl`` file or a local
    dataset folder."""
    if spec in ("builtin", "unseen"):
        split = "train" if spec == "builtin" else spec
        return generate(limit or 1000, seed=seed, levels=levels, split=split)
    if spec == "champ":
        return _champ(limit)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"no dataset at {spec!r}: give 'builtin', 'unseen', 'champ', a .jsonl file or a folder"
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

"""The expert engine's problems: worked solutions, read from JSONL or a dataset folder, as steps.

A solution is its lines: every line but the last is a step, the last is the
final line (``The answer is \\boxed{17}.``). A step's *result* is the first
number after its last ``=`` (``Pens in boxes: 3 * 4 = 12.`` gives 12), or, in
a line without ``=``, its last number; its *expression* is the arithmetic just
before that ``=`` (``3 * 4``). Numbers are compared as values, without sign
(``12``, ``12.0`` and ``$12`` agree; ``1,200`` is 1200).

Rows come from ``relay-train data`` JSONL (``question``, ``answer``,
``solution``), any JSONL with ``question`` and ``solution``, or GSM8K-style
rows whose ``answer`` is the worked solution (``48/2 = <<48/2=24>>24 ...`` and
a last line ``#### 72``): the calculator marks are dropped and the final line
becomes ``The answer is \\boxed{72}.``. A folder is read with the ``datasets``
package: one written by ``save_to_disk``, or one of ``*.jsonl``/``*.json``/
``*.parquet`` files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from protocol.errors import ModelUnavailable

__all__ = ["KnownProblem", "Step", "load_problems", "numbers"]

_NUMBER = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9])|[0-9]+(?:\.[0-9]+)?")
_EXPRESSION = re.compile(r"[0-9.,()+\-*/\u00d7\u00f7^ ]*$")  # with the signs for times and divide
_OPERATOR = re.compile(r"[+\-*/\u00d7\u00f7^]")
_CALCULATOR = re.compile(r"<<[^<>]*>>")
_BOXED = re.compile(r"\\boxed\{(.*)\}")
_FOLDER_FILES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class Step:
    """One solution line: its text, its result number and the expression that gave it."""

    text: str
    result: Decimal | None
    expression: str | None


@dataclass(frozen=True)
class KnownProblem:
    """A question, the steps of its worked solution and the final line."""

    question: str
    steps: tuple[Step, ...]
    final: str

    @property
    def boxed(self) -> str | None:
        """``\\boxed{..}`` as the final line writes it (``None`` when it has none)."""
        match = _BOXED.search(self.final)
        return match.group(0) if match else None


def numbers(text: str) -> list[Decimal]:
    """The numbers in ``text``, in order, as values (signs and thousands commas dropped)."""
    return [Decimal(n.replace(",", "")) for n in _NUMBER.findall(text)]


def load_problems(path: Path) -> list[KnownProblem]:
    """The problems in ``path`` (JSONL file or dataset folder); a bad one is ModelUnavailable."""
    try:
        rows = _folder_rows(path) if path.is_dir() else _jsonl_rows(path)
        return [_problem(row) for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(f"cannot read expert problems from {path}: {exc}") from exc


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _folder_rows(path: Path) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise ModelUnavailable(
            f"{path} is a folder: reading a dataset folder needs the datasets package "
            "(pip install datasets); or give a JSONL file"
        ) from None
    files = sorted(p for p in path.iterdir() if p.suffix in _FOLDER_FILES)
    saved = any((path / name).exists() for name in ("dataset_dict.json", "state.json"))
    if not (saved or files):
        raise ValueError("no saved dataset and no *.jsonl, *.json or *.parquet files in it")
    try:
        if saved:
            loaded = datasets.load_from_disk(str(path))
        else:
            kind, names = _FOLDER_FILES[files[0].suffix], [str(f) for f in files]
            loaded = datasets.load_dataset(kind, data_files=names, split="train")
    except Exception as exc:  # datasets' own errors, each said in one line
        raise ValueError(f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    splits = loaded.values() if isinstance(loaded, datasets.DatasetDict) else [loaded]
    return [dict(row) for split in splits for row in split]


def _problem(row: dict[str, Any]) -> KnownProblem:
    """A row as a problem: ``solution`` lines, or a GSM8K ``answer`` ending in ``#### X``."""
    answer = str(row.get("answer", ""))
    if row.get("solution") is None and "####" in answer:
        worked, _, value = answer.rpartition("####")
        final = f"The answer is \\boxed{{{value.strip()}}}."
        lines = [*_lines(_CALCULATOR.sub("", worked)), final]
    else:
        solution = str(row["solution"]) or f"The answer is \\boxed{{{answer}}}."
        lines = _lines(solution)
    question = str(row["question"]).strip()
    if not question:
        raise ValueError("a problem has an empty question")
    return KnownProblem(question, tuple(map(_step, lines[:-1])), lines[-1])


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _step(text: str) -> Step:
    before, equals, after = text.rpartition("=")
    found = numbers(after)[:1] if equals else []
    result = (found or numbers(text)[-1:] or [None])[0]
    match = _EXPRESSION.search(before) if equals else None
    expression = match.group(0).strip(" .,") if match else ""
    has_operation = bool(_OPERATOR.search(expression) and numbers(expression))
    return Step(text, result, expression if has_operation else None)

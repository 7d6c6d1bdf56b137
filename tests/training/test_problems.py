"""Problems: the generator is seeded, varied and correct, its unseen split shares no sentence
with training's; files and dataset folders load."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest

from training.problems import (
    PROMPT_SUFFIX,
    SPLITS,
    generate,
    load_problems,
    messages_for,
    write_problems,
)
from training.stories import unseen_families
from training.stories.writer import wording

STEP = re.compile(r": (-?\d+) ([-+*/]) (-?\d+) = (-?\d+)\.$")
# generate(300, seed=0, levels=(1, 2, 3, 4)) before the unseen split was added
TRAIN_SEED_0 = "1e953fc92f37782b7a3611728c9d1a8a0df9fff3466706dca2a62152303aa40f"


def test_the_train_split_is_what_it_always_was() -> None:
    problems = generate(300, seed=0, levels=(1, 2, 3, 4), split="train")
    assert problems == generate(300, seed=0, levels=(1, 2, 3, 4))
    text = json.dumps([asdict(p) for p in problems])
    assert hashlib.sha256(text.encode()).hexdigest() == TRAIN_SEED_0


@pytest.mark.parametrize("split", SPLITS)
def test_the_generator_is_seeded_and_distinct(split: str) -> None:
    first = generate(50, seed=4, split=split)
    assert first == generate(50, seed=4, split=split)
    assert first != generate(50, seed=5, split=split)
    assert len({p.id for p in first}) == 50


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_every_step_of_every_solution_is_right(level: int, split: str) -> None:
    for problem in generate(60, seed=level, levels=[level], split=split):
        lines = problem.solution.splitlines()
        assert len(lines) == level + 1  # one line per step, then the boxed answer
        value = None
        for line in lines[:-1]:
            a, op, b, result = STEP.search(line).groups()  # type: ignore[union-attr]
            a_, b_ = int(a), int(b)
            expected = {"+": a_ + b_, "-": a_ - b_, "*": a_ * b_, "/": a_ // b_}[op]
            assert op != "/" or a_ % b_ == 0
            assert int(result) == expected
            assert value is None or value in (a_, b_)  # each step works on the previous result
            value = expected
        assert lines[-1] == f"The answer is \\boxed{{{problem.answer}}}."
        assert int(problem.answer) == value > 0


def test_wording_varies() -> None:
    problems = generate(300, seed=0)
    openings = Counter(" ".join(p.question.split()[:3]) for p in problems)
    assert len(openings) > 60
    assert max(openings.values()) < 30
    names = {word for p in problems for word in p.question.split() if word.istitle()}
    assert len(names) > 40


def skeletons(split: str) -> set[tuple[str, ...]]:
    """Every sentence of a few hundred questions, numbers and capitalised words masked, in
    each form with one word left open (so a sentence that differs in one noun still meets)."""
    forms = set()
    for problem in generate(400, seed=7, levels=(1, 2, 3, 4), split=split):
        for sentence in re.split(r"(?<=[.?!])\s+", problem.question):
            words = re.sub(r"\b[A-Z][a-z]*\b", "X", re.sub(r"\d+", "#", sentence)).split()
            forms |= {(*words[:i], "*", *words[i + 1 :]) for i in range(len(words))}
    return forms


def test_the_unseen_split_shares_no_sentence_with_training() -> None:
    assert SPLITS == ("train", "unseen")
    assert not skeletons("train") & skeletons("unseen")
    train, unseen = generate(500, seed=1), generate(500, seed=1, split="unseen")
    assert not {p.id for p in train} & {p.id for p in unseen}
    assert not any(t.question in u.question or u.question in t.question
                   for t in train for u in unseen)  # fmt: skip


def test_the_unseen_split_has_several_families_and_wordings() -> None:
    problems = generate(300, seed=0, split="unseen")
    openings = Counter(" ".join(p.question.split()[:3]) for p in problems)
    assert len(openings) > 40
    assert max(openings.values()) < 30
    assert len(unseen_families.UNSEEN_FAMILIES) >= 5
    for family, words in wording("unseen").items():
        for name, variants in words.items():
            assert isinstance(variants, list), (family, name)
            choices = [variants] if isinstance(variants[0], str) else variants
            assert all(len(set(c)) >= 2 for c in choices), (family, name)


def test_unseen_loads_by_name_and_bad_splits_are_refused() -> None:
    assert load_problems("unseen", limit=5) == generate(5, split="unseen")
    assert load_problems("unseen", limit=5, seed=2) != load_problems("unseen", limit=5)
    assert load_problems("builtin", limit=5) == generate(5)
    with pytest.raises(ValueError, match="split must be one of train, unseen"):
        generate(3, split="test")


def test_the_question_asks_with_the_methods_suffix() -> None:
    (message,) = messages_for(generate(1)[0])
    assert message["role"] == "user"
    assert message["content"].endswith(PROMPT_SUFFIX)


def test_jsonl_round_trip_and_answer_formats(tmp_path: Path) -> None:
    problems = generate(5, seed=1)
    assert load_problems(str(write_problems(problems, tmp_path / "p.jsonl"))) == problems
    rows = [{"question": "2+2?", "answer": "Two and two make four.\n#### 4"},
            {"problem": "Half of one?", "solution": "It is $\\boxed{\\frac{1}{2}}$."}]  # fmt: skip
    (tmp_path / "mixed.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    loaded = load_problems(str(tmp_path / "mixed.jsonl"))
    assert [p.answer for p in loaded] == ["4", "\\frac{1}{2}"]


def test_a_local_dataset_folder_loads(tmp_path: Path) -> None:
    import datasets

    rows = {"question": ["1+1?", "3*3?"], "answer": ["#### 2", "so #### 9"]}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "d")
    assert [p.answer for p in load_problems(str(tmp_path / "d"))] == ["2", "9"]
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "test.jsonl").write_text(json.dumps({"problem": "x", "answer": "5"}))
    assert load_problems(str(tmp_path / "files"))[0].answer == "5"


def test_bad_sources_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="builtin"):
        load_problems(str(tmp_path / "missing.jsonl"))
    (tmp_path / "bad.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match="record 1 has no"):
        load_problems(str(tmp_path / "bad.jsonl"))
    (tmp_path / "broken.jsonl").write_text("{nope\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl:1"):
        load_problems(str(tmp_path / "broken.jsonl"))
    with pytest.raises(ValueError, match="levels"):
        generate(3, levels=[7])

"""The expert engine's problem files: JSONL, GSM8K-style answers and dataset folders, as steps."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from cloud.expert_problems import KnownProblem, load_problems, numbers
from cloud.settings import CloudSettings
from protocol.errors import ModelUnavailable
from tests.conftest import BIN

RELAY = {
    "question": "Zoë saves 16 € a week for 2 weeks. How many € has she saved? ",
    "answer": "32",
    "solution": "Money saved: 16 * 2 = 32.\nThe answer is \\boxed{32}.",
}
GSM8K = {
    "question": "Weng earns $12 an hour. She worked 50 minutes. How much did she earn?",
    "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
    "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
}


def check(problems: list[KnownProblem]) -> None:
    """``problems`` are RELAY and GSM8K, read as steps with their results."""
    zoe, weng = sorted(problems, key=lambda p: p.question, reverse=True)
    assert zoe.question == RELAY["question"].strip()
    assert [(s.result, s.expression) for s in zoe.steps] == [(Decimal(32), "16 * 2")]
    assert zoe.final == "The answer is \\boxed{32}."
    assert [s.text for s in weng.steps] == [
        "Weng earns 12/60 = $0.2 per minute.",
        "Working 50 minutes, she earned 0.2 x 50 = $10.",
    ]
    assert [s.result for s in weng.steps] == [Decimal("0.2"), Decimal(10)]
    assert weng.steps[0].expression == "12/60"
    assert weng.steps[1].expression is None  # "x" is no operator it knows
    assert (weng.final, weng.boxed) == ("The answer is \\boxed{10}.", "\\boxed{10}")


def test_jsonl_of_either_kind(tmp_path: Path) -> None:
    path = tmp_path / "problems.jsonl"
    path.write_text(f"{json.dumps(RELAY)}\n\n{json.dumps(GSM8K)}\n")
    check(load_problems(path))


def test_numbers_are_values() -> None:
    assert numbers("$1,200 and 3,4 or 12.50, -7.") == [
        Decimal(1200),
        Decimal(3),
        Decimal(4),
        Decimal("12.5"),
        Decimal(7),
    ]


def test_a_step_without_equals_ends_in_its_result(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({**GSM8K, "answer": "She has 3 left, then 5 more.\n#### 5"}))
    (problem,) = load_problems(path)
    assert [(s.result, s.expression) for s in problem.steps] == [(Decimal(5), None)]


def test_a_saved_dataset_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    splits = {"train": [RELAY], "test": [GSM8K]}
    saved = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
    saved.save_to_disk(str(tmp_path / "saved"))
    check(load_problems(tmp_path / "saved"))
    files = tmp_path / "files"
    files.mkdir()
    datasets.Dataset.from_list([GSM8K]).to_parquet(str(files / "gsm8k.parquet"))
    (problem,) = load_problems(files)
    assert problem.final == "The answer is \\boxed{10}."


def test_a_folder_without_datasets_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ModelUnavailable, match=r"needs the datasets package .*JSONL file$"):
        load_problems(tmp_path)


@pytest.mark.parametrize(
    ("text", "why"),
    [("{not json", "Expecting property name"), (json.dumps({"question": "Q?"}), "'solution'"),
     (json.dumps({**RELAY, "question": " "}), "empty question")],
)  # fmt: skip
def test_a_bad_file_is_model_unavailable(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "p.jsonl").write_text(text)
    with pytest.raises(ModelUnavailable, match=f"cannot read expert problems from .*{why}"):
        load_problems(tmp_path / "p.jsonl")


def test_a_folder_of_nothing_known_is_model_unavailable(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    with pytest.raises(ModelUnavailable, match="no saved dataset and no"):
        load_problems(tmp_path)
    (tmp_path / "bad.jsonl").write_text("{not json")
    with pytest.raises(ModelUnavailable, match=f"cannot read expert problems from {tmp_path}"):
        load_problems(tmp_path)


def test_relay_cloud_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text("{not json")
    command = [str(BIN / "relay-cloud"), "serve", "--engine", "expert", "--insecure-no-auth",
               "--problems", str(tmp_path / "p.jsonl")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: cannot read expert problems from")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_mode_is_a_setting_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = {"engine": "expert", "problems": tmp_path, "insecure_no_auth": True}
    assert CloudSettings(**given).expert_mode == "faithful"
    monkeypatch.setenv("RELAYLLM_CLOUD_EXPERT_MODE", "oracle")
    assert CloudSettings(**given).expert_mode == "oracle"

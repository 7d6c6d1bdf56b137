"""The expert engine of relay-cloud, served for real: it knows its problems and nothing else.

``faithful`` (the default) continues with the next steps of the worked solution;
``oracle`` (a sanity check) skips ahead so the boxed answer fits.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, relay_cloud

PROBLEM = {
    "question": "Ava has 3 boxes of 4 pens. She buys 5 more pens. How many pens does she have?",
    "answer": "17",
    "solution": "Pens in boxes: 3 * 4 = 12.\nAfter buying 5 more: 12 + 5 = 17.\n"
    "The answer is \\boxed{17}.",
}
ZOE = {
    "question": "Zoë saves 16 € a week for 2 weeks, then José takes 5 €. How many € are left?",
    "answer": "27",
    "solution": "Money saved: 16 * 2 = 32.\nAfter José takes 5: 32 - 5 = 27.\n"
    "The answer is \\boxed{27}.",
}
GSM8K = {
    "question": "Natalia sold clips to 48 friends in April and half as many in May. "
    "How many clips did she sell in April and May?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips in April and May.\n#### 72",
}
CHAT = f"<|im_start|>user\n{PROBLEM['question']}<|im_end|>\n<|im_start|>assistant\n"
REST = "After buying 5 more: 12 + 5 = 17.\nThe answer is \\boxed{17}."


def serve(folder: Path, *args: str) -> Iterator[str]:
    problems = folder / "problems.jsonl"
    rows = [PROBLEM, {**PROBLEM, "question": "Q2?"}, ZOE, GSM8K]
    problems.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows))
    with relay_cloud(
        "--engine", "expert", "--problems", str(problems), "--insecure-no-auth", *args
    ) as base:
        yield base


@pytest.fixture(scope="module")
def expert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("expert"))


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("oracle"), "--expert-mode", "oracle")


def complete(base: str, prompt: str, max_tokens: int = 64) -> dict[str, object]:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.7}
    response = httpx.post(f"{base}/v1/completions", json=body, timeout=10)
    return {"status": response.status_code, **response.json()}


def text_of(reply: dict[str, object]) -> str:
    return reply["choices"][0]["text"]  # type: ignore[index]


def finish_of(reply: dict[str, object]) -> str:
    return reply["choices"][0]["finish_reason"]  # type: ignore[index]


def sent(reply: dict[str, object]) -> int:
    return reply["usage"]["completion_tokens"]  # type: ignore[index]


def test_a_short_budget_gets_the_next_step_not_the_answer(expert: str) -> None:
    start = complete(expert, CHAT, max_tokens=8)
    assert text_of(start) == "Pens in boxes: 3 * 4 = 12."  # the old oracle: the boxed 17
    assert "\\boxed" not in text_of(start)
    assert (finish_of(start), sent(start)) == ("length", 8)
    cut = complete(expert, PROBLEM["question"] + " ", max_tokens=2)
    assert (text_of(cut), finish_of(cut)) == ("Pens in", "length")


def test_the_whole_rest_ends_with_the_boxed_answer_and_stop(expert: str) -> None:
    fresh = complete(expert, CHAT + "Let me see. ")
    assert text_of(fresh) == PROBLEM["solution"]
    assert (finish_of(fresh), sent(fresh)) == ("stop", 21)
    halfway = complete(expert, CHAT + "Pens in boxes: 3 * 4 = 12.\n")
    assert (text_of(halfway), finish_of(halfway)) == (REST, "stop")
    exact = complete(expert, CHAT + "Pens in boxes: 3 * 4 = 12.\n", max_tokens=13)
    assert (text_of(exact), finish_of(exact)) == (REST, "stop")  # the last token fits
    short = complete(expert, CHAT + "Pens in boxes: 3 * 4 = 12.\n", max_tokens=12)
    assert (text_of(short), finish_of(short)) == (REST.removesuffix(" \\boxed{17}."), "length")


def test_a_step_done_in_other_words_is_not_repeated(expert: str) -> None:
    reply = complete(expert, CHAT + "The boxes hold 12 pens.")
    assert (text_of(reply), finish_of(reply)) == (" " + REST, "stop")
    zoe = complete(expert, ZOE["question"] + "\nShe puts by 32 € in all.\n", max_tokens=12)
    assert text_of(zoe) == "After José takes 5: 32 - 5 = 27.\nThe answer is"


def test_a_wrong_number_restarts_at_its_step(expert: str) -> None:
    wrong = complete(expert, CHAT + "Pens in boxes: 3 * 4 = 11.\n", max_tokens=8)
    assert text_of(wrong) == "Pens in boxes: 3 * 4 = 12."
    later = complete(expert, CHAT + "Pens in boxes: 3 * 4 = 12.\n12 + 5 = 18, not 17.\n")
    assert text_of(later) == REST
    # 12 is written, but the answer's own 3 * 4 says 13: that step is not done
    contradicted = complete(expert, CHAT + "12 boxes? No: 3*4=13.", max_tokens=8)
    assert text_of(contradicted) == " Pens in boxes: 3 * 4 = 12."


def test_a_begun_line_is_finished_not_repeated(expert: str) -> None:
    assert text_of(complete(expert, CHAT + "Pens in boxes: 3 * 4 = ")) == "12.\n" + REST
    assert text_of(complete(expert, CHAT + "Pens in boxes: 3 * 4 =")) == " 12.\n" + REST
    assert text_of(complete(expert, CHAT + "Pens in boxes: 3 * 4 = 1")) == "2.\n" + REST
    assert text_of(complete(expert, CHAT + "Pens in boxes: 3 * 4 = 12")) == ".\n" + REST
    assert text_of(complete(expert, CHAT + "Pens in boxes: 3 * 4 = 12.")) == "\n" + REST


def test_odd_answers(expert: str) -> None:
    spaced = complete(expert, CHAT + "  \n ")
    assert text_of(spaced) == PROBLEM["solution"]
    tagged = complete(expert, CHAT + "Pens in boxes: 3 * 4 = 12. <call>8</call>")
    assert text_of(tagged) == REST
    done = complete(expert, CHAT + "It is 17, so The answer is \\boxed{ 17 }.")
    assert (text_of(done), finish_of(done), sent(done)) == ("", "stop", 0)
    wrong_box = complete(expert, CHAT + "The answer is \\boxed{16}.", max_tokens=3)
    assert text_of(wrong_box) == " Pens in boxes:"
    zoe = complete(expert, ZOE["question"], max_tokens=7)
    assert text_of(zoe) == " Money saved: 16 * 2 = 32."


def test_gsm8k_rows_are_steps_with_a_boxed_end(expert: str) -> None:
    reply = complete(expert, GSM8K["question"] + "\nIn May she sold 24.\n")
    assert text_of(reply) == "Natalia sold 48+24 = 72 clips in April and May.\n" + (
        "The answer is \\boxed{72}."
    )


def test_oracle_mode_still_jumps_to_the_answer(oracle: str) -> None:
    short = complete(oracle, PROBLEM["question"] + " ", max_tokens=5)
    assert text_of(short) == "The answer is \\boxed{17}."
    assert (finish_of(short), sent(short)) == ("stop", 4)
    cut = complete(oracle, PROBLEM["question"] + " ", max_tokens=2)
    assert (text_of(cut), finish_of(cut)) == ("The answer", "length")
    fresh = complete(oracle, CHAT + "Let me see. ")
    assert text_of(fresh) == PROBLEM["solution"]


def test_an_unknown_prompt_is_a_clear_400(expert: str) -> None:
    reply = complete(expert, "What is the meaning of life?")
    assert reply["status"] == 400
    assert "knows no problem" in reply["error"]["message"]  # type: ignore[index]


def test_streams_and_chat_work_too(expert: str) -> None:
    body = {"messages": [{"role": "user", "content": PROBLEM["question"]}], "stream": True}
    with httpx.stream("POST", f"{expert}/v1/chat/completions", json=body, timeout=10) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    texts = [json.loads(line[6:])["choices"][0]["delta"].get("content") or "" for line in lines]
    assert "".join(texts).strip() == PROBLEM["solution"]


def test_the_expert_needs_its_problems(tmp_path: Path) -> None:
    command = [str(BIN / "relay-cloud"), "serve", "--engine", "expert", "--insecure-no-auth"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--problems" in done.stderr


def test_an_unknown_mode_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(json.dumps(PROBLEM))
    command = [str(BIN / "relay-cloud"), "serve", "--engine", "expert", "--insecure-no-auth",
               "--problems", str(tmp_path / "p.jsonl"), "--expert-mode", "psychic"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "'faithful' or 'oracle'" in done.stderr
    assert "Traceback" not in done.stderr

"""The expert engine of relay-cloud, served for real: it knows its problems and nothing else."""

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


@pytest.fixture(scope="module")
def expert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    problems = tmp_path_factory.mktemp("expert") / "problems.jsonl"
    problems.write_text(json.dumps(PROBLEM) + "\n" + json.dumps({**PROBLEM, "question": "Q2?"}))
    with relay_cloud(
        "--engine", "expert", "--problems", str(problems), "--insecure-no-auth"
    ) as base:
        yield base


def complete(base: str, prompt: str, max_tokens: int = 64) -> dict[str, object]:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.7}
    response = httpx.post(f"{base}/v1/completions", json=body, timeout=10)
    return {"status": response.status_code, **response.json()}


def text_of(reply: dict[str, object]) -> str:
    return reply["choices"][0]["text"]  # type: ignore[index]


def test_it_finishes_a_known_problem_from_where_the_answer_is(expert: str) -> None:
    chat = f"<|im_start|>user\n{PROBLEM['question']}<|im_end|>\n<|im_start|>assistant\n"
    fresh = complete(expert, chat + "Let me see. ")
    assert text_of(fresh) == PROBLEM["solution"]
    assert fresh["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
    begun = complete(expert, chat + "Pens in boxes: 3 * 4 = ")
    assert text_of(begun).startswith("12.\nAfter buying 5 more")
    halfway = complete(expert, chat + "Pens in boxes: 3 * 4 = 12.\n")
    assert text_of(halfway) == "After buying 5 more: 12 + 5 = 17.\nThe answer is \\boxed{17}."


def test_a_short_budget_still_gets_the_final_answer(expert: str) -> None:
    short = complete(expert, PROBLEM["question"] + " ", max_tokens=5)
    assert text_of(short) == "The answer is \\boxed{17}."
    assert short["usage"]["completion_tokens"] == 4  # type: ignore[index]
    cut = complete(expert, PROBLEM["question"] + " ", max_tokens=2)
    assert text_of(cut) == "The answer"
    assert cut["choices"][0]["finish_reason"] == "length"  # type: ignore[index]


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

"""Warm-up commands where the SLM would go wrong: the step's number, its size, the placement."""

from __future__ import annotations

from edge.core.prompt import build_prompt
from training.hf_text import HFChat
from training.models import LoadedSLM
from training.problems import Problem, messages_for
from training.warmup_errors import (
    answer_with_calls,
    error_prefixes,
    result_span,
    solution_lines,
    step_size,
    wrong_steps,
    wrong_steps_batch,
)

LINES = ["Money saved: 16 * 2 = 32.", "With the gift: 32 + 5 = 37.", "The answer is \\boxed{37}."]


def test_the_number_of_a_step_is_its_result() -> None:
    line = LINES[0]
    start, end = result_span(line)  # type: ignore[misc]
    assert line[start:end] == "32"
    boxed = LINES[2]
    start, end = result_span(boxed)  # type: ignore[misc]
    assert boxed[start:end] == "37"
    assert result_span("Let us think about it.") is None
    negative = "Net change: 3 - 10 = -7."
    start, end = result_span(negative)  # type: ignore[misc]
    assert negative[start:end] == "-7"
    assert result_span("Total: 1,250 + 3 = 1,253 apples.") is not None


def test_a_step_is_sized_in_the_expert_clouds_tokens() -> None:
    assert step_size("Money saved: 16 * 2 = 32.") == 7
    assert step_size("Ünïcode café: 2 + 2 = 4.") == 7
    assert step_size("") == 1


def test_commands_replace_the_wrong_steps_up_to_the_limit() -> None:
    text = answer_with_calls(LINES, [True, False, True], max_calls=2)
    assert text == "<call>7</call>\nWith the gift: 32 + 5 = 37.\n<call>4</call>"
    assert answer_with_calls(LINES, [True, True, True], max_calls=1).count("<call>") == 1
    assert answer_with_calls(LINES, [False] * 3, max_calls=2) == "\n".join(LINES)


HARD = ["Boxes of pens: 347 * 29 = 10063.", "The answer is \\boxed{10063}."]
PROBLEM = Problem("A shop has 347 boxes of 29 pens each. How many pens?", "10063",
                  "\n".join(HARD))  # fmt: skip


def test_the_slm_misses_a_hard_product_but_not_a_copied_number(hf_slm: LoadedSLM) -> None:
    lines, problem = HARD, PROBLEM
    chat = HFChat(hf_slm.tokenizer, template=hf_slm.chat_template)
    prompt = build_prompt(chat, messages_for(problem), n_ctx=1024)
    wrong = wrong_steps(hf_slm.model, hf_slm.tokenizer, prompt.tokens, lines)
    assert wrong[0] is True  # a 135M model does not multiply 347 by 29 in its head
    (prefix,) = error_prefixes(hf_slm.model, hf_slm.tokenizer, chat, [problem], n_ctx=1024,
                               max_calls=2)  # fmt: skip
    assert prefix.startswith("<call>8</call>\n")


def test_answers_checked_together_are_checked_as_alone(hf_slm: LoadedSLM) -> None:
    chat = HFChat(hf_slm.tokenizer, template=hf_slm.chat_template)
    short = Problem("Tom has 2 apples and gets 3 more. How many?", "5",
                    "After getting 3 more: 2 + 3 = 5.\nThe answer is \\boxed{5}.")  # fmt: skip
    items = [(build_prompt(chat, messages_for(p), n_ctx=1024).tokens, solution_lines(p))
             for p in (short, PROBLEM)]  # fmt: skip
    together = wrong_steps_batch(hf_slm.model, hf_slm.tokenizer, items)
    assert together == [wrong_steps(hf_slm.model, hf_slm.tokenizer, *item) for item in items]

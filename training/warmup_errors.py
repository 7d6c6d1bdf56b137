"""Warm-up commands where the SLM would go wrong: before each step whose number it misses.

The SLM reads the reference solution teacher-forced (one forward pass per
problem). A step is a line of the solution; its number is the result after
the line's last ``=`` (or inside ``\\boxed{}`` on the final line). Where the
SLM's most likely tokens for that number differ from the reference's, the
SLM would get the step wrong: the command ``<call>N</call>`` goes at the
start of that line, ``N`` the step's size in the cloud's tokens, and the
cloud writes the step. Where it would get it right, it writes the step
itself. So an example holds as many calls as the SLM has weak steps (up to
``max_calls``), and the SLM learns to go on after a call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from edge.prompt import ChatFormat, build_prompt
from protocol.calls import format_call
from training.problems import Problem, messages_for

__all__ = ["answer_with_calls", "error_prefixes", "result_span", "step_size", "wrong_steps"]

_RESULT = re.compile(r"=\s*(-?\d[\d,]*(?:\.\d+)?)[^=\d]*$")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_PIECE = re.compile(r"\s*\S+")


def result_span(line: str) -> tuple[int, int] | None:
    """Where the step's number lies in ``line`` (characters), or ``None`` if it has none."""
    found = _BOXED.search(line) or _RESULT.search(line)
    return found.span(1) if found else None


def step_size(line: str) -> int:
    """The step's length in the expert cloud's tokens (words with their leading space)."""
    return max(1, len(_PIECE.findall(line)))


def wrong_steps(
    model: Any, tokenizer: Any, prompt: Sequence[int], lines: Sequence[str]
) -> list[bool]:
    """For each line, whether the SLM's greedy tokens miss the line's number (teacher-forced)."""
    import torch

    answer = "\n".join(lines)
    encoded = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    inputs = torch.tensor([[*prompt, *ids]], device=next(model.parameters()).device)
    with torch.inference_mode():
        logits = model(input_ids=inputs).logits[0]
    greedy = logits[len(prompt) - 1 : -1].argmax(dim=-1).tolist()  # a guess per answer token
    wrong, start = [], 0
    for line in lines:
        span = result_span(line)
        if span is None:
            wrong.append(False)
        else:
            low, high = start + span[0], start + span[1]
            inside = [i for i, (a, b) in enumerate(offsets) if a < high and b > low]
            wrong.append(any(greedy[i] != ids[i] for i in inside))
        start += len(line) + 1
    return wrong


def answer_with_calls(lines: Sequence[str], wrong: Sequence[bool], *, max_calls: int) -> str:
    """The solution with a command in place of each of the first ``max_calls`` wrong steps."""
    parts, calls = [], 0
    for line, miss in zip(lines, wrong, strict=True):
        if miss and calls < max_calls:
            parts.append(format_call(step_size(line)))
            calls += 1
        else:
            parts.append(line)
    return "\n".join(parts)


def solution_lines(problem: Problem) -> list[str]:
    """The reference solution's steps, the final answer line last."""
    text = problem.solution or f"The answer is \\boxed{{{problem.answer}}}."
    return [line.strip() for line in text.splitlines() if line.strip()]


def error_prefixes(
    model: Any,
    tokenizer: Any,
    chat: ChatFormat,
    problems: Sequence[Problem],
    *,
    n_ctx: int,
    max_calls: int,
) -> list[str]:
    """Each problem's reference answer with commands where the SLM would go wrong."""
    model.eval()
    prefixes = []
    for problem in problems:
        lines = solution_lines(problem)
        prompt = build_prompt(chat, messages_for(problem), n_ctx=n_ctx)
        wrong = wrong_steps(model, tokenizer, prompt.tokens, lines)
        prefixes.append(answer_with_calls(lines, wrong, max_calls=max_calls))
    return prefixes

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
from collections.abc import Callable, Sequence
from typing import Any

from edge.core.prompt import ChatFormat, build_prompt
from protocol.calls import format_call
from training.problems import Problem, messages_for

__all__ = [
    "answer_with_calls",
    "error_prefixes",
    "result_span",
    "step_size",
    "wrong_steps",
    "wrong_steps_batch",
]

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
    return wrong_steps_batch(model, tokenizer, [(prompt, lines)])[0]


def wrong_steps_batch(
    model: Any, tokenizer: Any, items: Sequence[tuple[Sequence[int], Sequence[str]]]
) -> list[list[bool]]:
    """:func:`wrong_steps` for several answers in one forward pass.

    Rows are padded on the right: under causal attention no real token sees the padding.
    """
    import torch

    rows = []
    for prompt, lines in items:
        encoded = tokenizer("\n".join(lines), add_special_tokens=False,
                            return_offsets_mapping=True)  # fmt: skip
        rows.append((list(prompt), encoded["input_ids"], encoded["offset_mapping"], lines))
    width = max(len(prompt) + len(ids) for prompt, ids, _, _ in rows)
    padded = [[*p, *ids, *[0] * (width - len(p) - len(ids))] for p, ids, _, _ in rows]
    inputs = torch.tensor(padded, device=next(model.parameters()).device)
    with torch.inference_mode():
        logits = model(input_ids=inputs).logits
    found = []
    for row, (prompt, ids, offsets, lines) in enumerate(rows):
        guesses = logits[row, len(prompt) - 1 : len(prompt) - 1 + len(ids)].argmax(dim=-1)
        found.append(_misses(lines, ids, offsets, guesses.tolist()))
    return found


def _misses(
    lines: Sequence[str], ids: Sequence[int], offsets: Sequence[tuple[int, int]],
    greedy: Sequence[int],
) -> list[bool]:  # fmt: skip
    """Per line: whether a token of its number differs from the greedy guess."""
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
    batch: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Each problem's reference answer with commands where the SLM would go wrong.

    ``batch`` answers share a forward pass (on a CPU one at a time is fastest: padding costs
    more than it saves); ``progress`` hears of each pass: answers done, answers in all."""
    model.eval()
    prefixes = []
    for start in range(0, len(problems), batch):
        group = problems[start : start + batch]
        items = [(build_prompt(chat, messages_for(p), n_ctx=n_ctx).tokens, solution_lines(p))
                 for p in group]  # fmt: skip
        for (_, lines), wrong in zip(items, wrong_steps_batch(model, tokenizer, items)):
            prefixes.append(answer_with_calls(lines, wrong, max_calls=max_calls))
        if progress is not None:
            progress(len(prefixes), len(problems))
    return prefixes

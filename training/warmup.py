"""Warm-up data for SFT: answers with numbered commands and the cloud's real continuations.

For each problem an answer is taken (its reference solution, or the SLM's own
answer). By default the commands go where the SLM would get a step wrong
(:mod:`training.warmup_errors`), sized to that step. Otherwise a share of
answers keeps no call and the others get 1 to ``max_calls`` commands
``<call>N</call>`` at token boundaries (random ones, or where the SLM's
next-token entropy is highest), every command with a number N from
``call_sizes`` (never an empty tag). The example is then built by the relay
loop itself, with the answer as its prefix: each command calls the cloud for
real through the edge's client, the cloud's text is spliced exactly as at
inference, and the rest of the answer follows (a cloud ``stop`` ends it, as
it would at inference). The SLM's own tokens and commands are learned; the
prompt and the cloud's tokens are not (label -100).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from edge.clouds.fallback import OfflineCloud
from edge.core.batch import BatchModel, relay_batch
from edge.core.cloud import CloudClient
from edge.core.local_model import TextCodec
from edge.core.policies import LearnedPolicy, NeverPolicy
from edge.core.prompt import ChatFormat, build_prompt
from edge.core.record import AnswerRecord
from edge.core.relay import ENTROPY, SAMPLE, CallCloud, RelayAnswer, RelayLimits
from protocol.calls import format_call, strip_calls
from protocol.sampling import SamplingParams
from training.problems import Problem, messages_for

__all__ = [
    "WarmupExample",
    "build_warmup",
    "entropy_scorer",
    "insert_calls",
    "label",
    "slm_answers",
]

IGNORE = -100

Entropies = Callable[[Sequence[int], Sequence[int]], list[float]]
"""(prompt tokens, answer tokens) -> entropy before each answer token."""


@dataclass(frozen=True)
class WarmupExample:
    """One SFT example: token ids and labels (``-100``: not learned).

    ``prefix`` is the answer with its commands, as the SLM's side of it was forced.
    """

    problem_id: str
    prefix: str
    input_ids: list[int]
    labels: list[int]
    calls: int
    cloud_tokens: int


def insert_calls(
    answer: str,
    codec: TextCodec,
    rng: random.Random,
    *,
    count: int,
    sizes: Sequence[int],
    entropies: Sequence[float] | None = None,
) -> str:
    """``answer`` with ``count`` commands at token boundaries that are character boundaries."""
    tokens = codec.tokenize(answer)
    offsets: dict[int, int] = {}  # token boundary -> character offset
    for i in range(1, len(tokens)):
        try:
            offsets[i] = len(codec.detokenize(tokens[:i]).decode("utf-8"))
        except UnicodeDecodeError:
            continue
    if entropies is not None:
        ranked = sorted(offsets, key=lambda i: -entropies[i])
        chosen = ranked[:count]
    else:
        chosen = rng.sample(sorted(offsets), min(count, len(offsets)))
    text, shift = answer, 0
    for boundary in sorted(chosen):
        command = format_call(rng.choice(sizes))
        at = offsets[boundary] + shift
        text, shift = text[:at] + command + text[at:], shift + len(command)
    return text


def label(prompt: Sequence[int], record: AnswerRecord, eos: int) -> tuple[list[int], list[int]]:
    """Input ids and labels of one answer: the SLM's tokens learned, the rest not.

    An answer the SLM ended itself gets its end-of-turn token (learned); one a
    cloud ``stop`` ended does not, as the SLM writes nothing after it.
    """
    ended_by_cloud = (
        bool(record.calls) and record.calls[-1].finish_reason == "stop" and record.mask[-1:] == [0]
    )
    tail = [] if ended_by_cloud else [eos]
    ids = [*prompt, *record.tokens, *tail]
    labels = [IGNORE] * len(prompt)
    labels += [t if m else IGNORE for t, m in zip(record.tokens, record.mask, strict=True)]
    return ids, labels + tail


def build_warmup(
    problems: Sequence[Problem],
    *,
    codec: TextCodec,
    chat: ChatFormat,
    cloud: CloudClient,
    eos: int,
    n_ctx: int,
    no_call_share: float,
    max_calls: int,
    sizes: Sequence[int],
    seed: int = 0,
    answers: Sequence[str] | None = None,
    entropies: Entropies | None = None,
    prefixes: Sequence[str] | None = None,
    concurrency: int = 4,
) -> list[WarmupExample]:
    """One example per problem (see the module docstring); ``answers`` default to references.

    ``prefixes`` gives each answer with its commands already placed (see
    :mod:`training.warmup_errors`), instead of placing them here."""
    texts = list(answers) if answers is not None else [p.solution or p.answer for p in problems]
    limits = RelayLimits(max_calls=max_calls, max_tokens=n_ctx)

    def one(index: int) -> WarmupExample:
        rng = random.Random(f"{seed}-{index}")
        problem, answer = problems[index], texts[index]
        prompt = build_prompt(chat, messages_for(problem), n_ctx=n_ctx)
        if prefixes is not None:
            prefix = prefixes[index]
        else:
            count = 0 if rng.random() < no_call_share else rng.randint(1, max_calls)
            wanted = entropies is not None and count > 0
            scores = entropies(prompt.tokens, codec.tokenize(answer)) if wanted else None
            prefix = insert_calls(answer, codec, rng, count=count, sizes=sizes, entropies=scores)
        relay = RelayAnswer(prompt, codec, LearnedPolicy(), limits=limits, n_ctx=n_ctx,
                            seed=seed + index, prefix=prefix, end_after_prefix=True)  # fmt: skip
        record = _run_without_model(relay, cloud)
        ids, labels = label(prompt.tokens, record, eos)
        return WarmupExample(problem.id, prefix, ids, labels, len(record.calls), record.llm_tokens)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(len(problems))))


def _run_without_model(answer: RelayAnswer, cloud: CloudClient) -> AnswerRecord:
    """Drive an answer made only of forced text and calls: no token is ever sampled."""
    steps = answer.steps()
    reply = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration:
            return answer.record
        reply = None
        if isinstance(step, CallCloud):
            reply = cloud.stream(step.request)
        elif step is SAMPLE or step is ENTROPY:
            raise RuntimeError("a warm-up answer is forced text: nothing should be sampled")


def entropy_scorer(model: Any) -> Entropies:
    """Entropies of a transformers model's next-token distribution along an answer."""

    def score(prompt: Sequence[int], answer: Sequence[int]) -> list[float]:
        import torch

        ids = torch.tensor([[*prompt, *answer]], device=next(model.parameters()).device)
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        return (-(logprobs.exp() * logprobs).nansum(dim=-1)).tolist()

    return score


def slm_answers(
    batch: BatchModel,
    chat: ChatFormat,
    problems: Sequence[Problem],
    *,
    n_ctx: int,
    max_tokens: int,
    seed: int = 0,
    rows: int = 8,
) -> list[str]:
    """The SLM's own answers to ``problems`` (alone, sampled at 0.7), commands left out."""
    answers: list[str] = []
    limits = RelayLimits(max_calls=0, max_tokens=max_tokens)
    for start in range(0, len(problems), rows):
        group = problems[start : start + rows]
        prompts = [build_prompt(chat, messages_for(p), n_ctx=n_ctx) for p in group]
        records = relay_batch(batch, OfflineCloud(), NeverPolicy(), prompts, limits=limits,
                              sampling=SamplingParams(temperature=0.7),
                              seeds=[seed + start + i for i in range(len(group))])  # fmt: skip
        answers += [strip_calls(r.text).strip() or p.answer for r, p in zip(records, group)]
    return answers

"""Drawing a token from logits in torch, in llama.cpp's order (see :mod:`protocol.sampling`).

Penalties over the row's drawn tokens, top-k, top-p, min-p, temperature, then a
draw from the row's own seeded generator (greedy takes the arg-max).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from protocol.sampling import SamplingParams

__all__ = ["sample_token", "seeded_generator"]


def sample_token(
    logits: torch.Tensor, params: SamplingParams, drawn: Sequence[int], generator: torch.Generator
) -> int:
    """One token from ``logits`` (a 1-D tensor) by ``params``; stages in the order above."""
    x = logits.clone()
    for token, bias in params.logit_bias:
        x[token] += bias
    if params.penalised and drawn:
        counts = Counter(drawn[-params.penalty_last_n :])
        ids = torch.tensor(list(counts), device=x.device)
        seen = torch.tensor(list(counts.values()), dtype=x.dtype, device=x.device)
        values = x[ids]
        values = torch.where(values <= 0, values * params.repeat_penalty,
                             values / params.repeat_penalty)  # fmt: skip
        x[ids] = values - seen * params.frequency_penalty - params.presence_penalty
    if params.greedy:
        return int(torch.argmax(x))
    if 0 < params.top_k < x.numel():
        x[x < torch.topk(x, params.top_k).values[-1]] = -math.inf
    if params.top_p < 1.0:
        sorted_x, order = torch.sort(x, descending=True)
        cumulative = torch.softmax(sorted_x, dim=-1).cumsum(dim=-1)
        cut = int(torch.searchsorted(cumulative, torch.tensor(params.top_p))) + 1
        x[order[cut:]] = -math.inf
    if params.min_p > 0.0:
        x[x < x.max() + math.log(params.min_p)] = -math.inf
    probs = torch.softmax(x / params.temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def seeded_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``, or from the system when ``None``."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator

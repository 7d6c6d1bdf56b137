"""Training rollouts through the relay loop against transformers' own ``generate``.

``rollout_vs_generate_ratio``: tokens per second of :func:`edge.core.batch.relay_batch`
on the transformers backend (no calls) / tokens per second of ``generate``,
same model, same batch of prompts, same sampling. Needs the ``train`` extra.
"""

from __future__ import annotations

import time

from edge.clouds.fallback import OfflineCloud
from edge.core.batch import relay_batch
from edge.core.policies import NeverPolicy
from edge.core.prompt import build_prompt
from edge.core.relay import RelayLimits
from protocol.sampling import SamplingParams

__all__ = ["rollout_vs_generate_ratio"]

STORY = "Tell me a long story about the number {i}, a dragon and a lighthouse."


def rollout_vs_generate_ratio(rows: int, tokens: int) -> tuple[float, float, float]:
    """(ratio, relay tokens/s, generate tokens/s) for ``rows`` answers of ``tokens`` tokens."""
    import torch

    from training.hf_backend import HFBatch
    from training.hf_text import HFChat
    from training.models import load_slm

    slm = load_slm(None)
    chat = HFChat(slm.tokenizer, template=slm.chat_template)
    prompts = [
        build_prompt(chat, [{"role": "user", "content": STORY.format(i=i)}], n_ctx=2048)
        for i in range(rows)
    ]
    batch = HFBatch(slm.model, slm.tokenizer, n_ctx=2048)
    sampling = SamplingParams(temperature=1.0)
    warm = RelayLimits(max_tokens=4)
    relay_batch(batch, OfflineCloud(), NeverPolicy(), prompts[:1], limits=warm)
    started = time.perf_counter()
    limits = RelayLimits(max_tokens=tokens)
    records = relay_batch(batch, OfflineCloud(), NeverPolicy(), prompts, sampling=sampling,
                          limits=limits, seeds=list(range(rows)))  # fmt: skip
    relay_rate = sum(len(r.tokens) for r in records) / (time.perf_counter() - started)

    pad = slm.tokenizer.pad_token_id or slm.tokenizer.eos_token_id
    width = max(len(p.tokens) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p.tokens)) + list(p.tokens) for p in prompts])
    mask = (torch.arange(width) >= torch.tensor([[width - len(p.tokens)] for p in prompts])).long()
    started = time.perf_counter()
    slm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens,
                       min_new_tokens=tokens, do_sample=True, temperature=1.0, top_k=0,
                       pad_token_id=pad)  # fmt: skip
    generate_rate = rows * tokens / (time.perf_counter() - started)
    return relay_rate / generate_rate, relay_rate, generate_rate

"""The warm-up examples of a run: answers, where their commands go, and the relay that builds them.

By default the commands go where the SLM would get a step wrong
(:mod:`training.warmup_errors`); ``warmup.positions`` can place them at
random or where the SLM is least sure instead (:mod:`training.warmup`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.cloud import CloudClient
from edge.core.prompt import ChatFormat
from protocol.calls import CALL_OPEN
from training.warmup import WarmupExample

if TYPE_CHECKING:
    from training.models import LoadedSLM
    from training.pipeline import Run

__all__ = ["build_examples"]


def build_examples(run: Run, slm: LoadedSLM, cloud: CloudClient) -> list[WarmupExample]:
    """One warm-up example per training problem, built by the relay loop with ``cloud``."""
    from training.hf_backend import HFBatch
    from training.hf_text import HFChat, HFCodec
    from training.warmup import build_warmup, entropy_scorer, slm_answers

    settings, problems = run.config.warmup, run.problems("train")
    chat = HFChat(slm.tokenizer, template=slm.chat_template)
    n_ctx = run.config.sft.max_length
    answers = None
    if settings.answers == "slm":
        batch = HFBatch(slm.model, slm.tokenizer, n_ctx=n_ctx)
        answers = slm_answers(batch, chat, problems, n_ctx=n_ctx, max_tokens=n_ctx // 2,
                              seed=run.config.seed)  # fmt: skip
    prefixes = _at_errors(run, slm, chat) if settings.positions == "errors" else None
    return build_warmup(
        problems,
        codec=HFCodec(slm.tokenizer),
        chat=chat,
        cloud=cloud,
        eos=slm.tokenizer.eos_token_id,
        n_ctx=n_ctx,
        no_call_share=settings.no_call_share,
        max_calls=settings.max_calls,
        sizes=settings.call_sizes,
        seed=run.config.seed,
        answers=answers,
        entropies=entropy_scorer(slm.model) if settings.positions == "entropy" else None,
        prefixes=prefixes,
    )


def _at_errors(run: Run, slm: LoadedSLM, chat: ChatFormat) -> list[str]:
    """The reference answers with commands where the SLM would go wrong, with a progress bar."""
    from tqdm.auto import tqdm

    from training.warmup_errors import error_prefixes

    problems = run.problems("train")
    with tqdm(total=len(problems), desc="sft: steps the SLM gets wrong") as bar:

        def advance(done: int, _: int) -> None:
            bar.update(done - bar.n)

        prefixes = error_prefixes(slm.model, slm.tokenizer, chat, problems,
                                  n_ctx=run.config.sft.max_length,
                                  max_calls=run.config.warmup.max_calls,
                                  progress=advance)  # fmt: skip
    placed = sum(p.count(CALL_OPEN) for p in prefixes)
    run.say(f"sft: {placed} calls where the SLM would get a step wrong, in "
            f"{sum(CALL_OPEN in p for p in prefixes)} of {len(prefixes)} answers")  # fmt: skip
    return prefixes

"""The transformers backend drives the same relay loop as llama.cpp, token for token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from edge.core.batch import relay_batch
from edge.core.cloud import CloudEnd, CloudItem, CloudRequest, CloudText
from edge.core.loop import RelayLoop
from edge.core.policies import LearnedPolicy
from edge.core.prompt import build_prompt
from edge.core.relay import RelayLimits
from edge.llama import LlamaChat, LlamaModel
from protocol.sampling import SamplingParams
from training.export import parity
from training.hf_backend import HFBatch, HFModel
from training.hf_sampling import sample_token
from training.hf_text import HFChat
from training.models import LoadedSLM

GREEDY = SamplingParams(temperature=0.0)
ODD_TEXTS = ["🙂 naïve 日本語", "<|im_end|> not a turn", "a</call>.", "  spaces\n\ttabs", ""]


@pytest.fixture(scope="module")
def batch(f16_pair: tuple[Any, Path], hf_slm: LoadedSLM) -> HFBatch:
    return HFBatch(f16_pair[0], hf_slm.tokenizer, n_ctx=2048)


class ScriptedCloud:
    def __init__(self, text: str) -> None:
        self.text = text

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        yield CloudText(self.text)
        yield CloudEnd(outcome="ok", finish_reason="length", completion_tokens=4)


def test_both_backends_read_text_the_same(batch: HFBatch, f16_edge: LlamaModel) -> None:
    for text in ODD_TEXTS:
        tokens = f16_edge.tokenize(text)
        assert batch.tokenize(text) == tokens
        assert batch.detokenize(tokens) == f16_edge.detokenize(tokens) == text.encode()
    assert {t for t in range(len(batch.tokenizer)) if batch.is_end(t)} == {
        t for t in range(len(batch.tokenizer)) if f16_edge.is_end(t)
    }


def test_greedy_continuations_agree_token_for_token(
    f16_pair: tuple[Any, Path], hf_slm: LoadedSLM, f16_edge: LlamaModel
) -> None:
    chat = LlamaChat(f16_edge)
    prompts = [
        build_prompt(chat, [{"role": "user", "content": q}], n_ctx=2048).tokens
        for q in ("What is 12 + 30?", "Name three rivers.", "Écris une phrase en français.")
    ]
    report = parity(f16_pair[0], hf_slm.tokenizer, f16_pair[1], prompts, tokens=24, n_threads=2)
    assert report.first_mismatch == [None, None, None]
    assert report.agreement == 1.0


def test_a_relay_answer_with_a_call_is_identical_on_both(
    batch: HFBatch, hf_slm: LoadedSLM, f16_edge: LlamaModel
) -> None:
    messages = [{"role": "user", "content": "Name three colours."}]
    records = []
    hf_chat = HFChat(hf_slm.tokenizer, template=hf_slm.chat_template)
    for model, chat in ((f16_edge, LlamaChat(f16_edge)), (HFModel(batch), hf_chat)):
        prompt = build_prompt(chat, messages, n_ctx=2048)
        loop = RelayLoop(model, ScriptedCloud(" green, and blue are"), LearnedPolicy(),
                         limits=RelayLimits(max_tokens=48), sampling=GREEDY)  # fmt: skip
        events = list(loop.run(prompt, prefix="Red,<call>4</call>"))
        assert events[-1].type == "done"
        records.append((prompt, loop.record))
    (llama_prompt, on_llama), (hf_prompt, on_hf) = records
    assert hf_prompt == llama_prompt  # same prompt tokens, cloud text and stops
    assert on_hf is not None
    assert on_llama is not None
    assert on_hf.tokens == on_llama.tokens
    assert on_hf.mask == on_llama.mask
    assert 0 in on_hf.mask
    assert on_hf.mask.count(1) > 8


def test_batched_rows_match_answers_run_alone(batch: HFBatch, hf_slm: LoadedSLM) -> None:
    chat = HFChat(hf_slm.tokenizer, template=hf_slm.chat_template)
    questions = ["Hi!", "What is the capital of France? Answer in one word.", "Count to five."]
    prompts = [build_prompt(chat, [{"role": "user", "content": q}], n_ctx=2048) for q in questions]
    cloud = ScriptedCloud(" and so on")
    limits = RelayLimits(max_tokens=20)
    together = relay_batch(batch, cloud, LearnedPolicy(), prompts, limits=limits, sampling=GREEDY)
    alone = [
        relay_batch(batch, cloud, LearnedPolicy(), [p], limits=limits, sampling=GREEDY)[0]
        for p in prompts
    ]
    assert [r.tokens for r in together] == [r.tokens for r in alone]


def test_rewound_tokens_are_masked_out(batch: HFBatch, f16_edge: LlamaModel) -> None:
    prompt = f16_edge.tokenize("The capital of France is")
    batch.start([prompt], [GREEDY])
    batch.extend(0, f16_edge.tokenize(" Berlin, no"))
    batch.forward()
    batch.rewind(0, len(f16_edge.tokenize(" Berlin, no")))
    batch.extend(0, f16_edge.tokenize(" the city of"))
    after_rewind = batch.sample(0)
    batch.start([prompt + f16_edge.tokenize(" the city of")], [GREEDY])
    assert batch.sample(0) == after_rewind


def test_sampling_is_seeded_and_follows_the_stages() -> None:
    logits = torch.tensor([3.0, 2.9, 1.0, 0.5, -1.0])

    def draws(params: SamplingParams) -> list[int]:
        generator = torch.Generator().manual_seed(params.seed or 0)
        return [sample_token(logits, params, [], generator) for _ in range(50)]

    hot = SamplingParams(temperature=5.0, seed=3)
    assert draws(hot) == draws(hot)
    assert set(draws(hot)) > {0, 1}
    assert set(draws(SamplingParams(temperature=5.0, top_k=2, seed=3))) == {0, 1}
    assert set(draws(SamplingParams(temperature=5.0, min_p=0.5, seed=3))) == {0, 1}
    assert sample_token(logits, GREEDY, [], torch.Generator()) == 0
    penalised = SamplingParams(temperature=0.0, repeat_penalty=2.0)
    assert sample_token(logits, penalised, [0], torch.Generator()) == 1  # 3.0 / 2 < 2.9
    biased = SamplingParams(temperature=0.0, logit_bias=((3, 3.0),))
    assert sample_token(logits, biased, [], torch.Generator()) == 3  # 0.5 + 3 > 3.0
    assert logits[3] == 0.5  # the caller's logits are left as they were


def test_penalties_agree_with_llama_cpp(batch: HFBatch, f16_edge: LlamaModel) -> None:
    prompt = f16_edge.tokenize("1, 1, 1, 1, 1, 1, 1,")
    params = SamplingParams(temperature=0.0, repeat_penalty=1.3, presence_penalty=0.5,
                            frequency_penalty=0.2, penalty_last_n=8)  # fmt: skip
    batch.start([prompt], [params])
    f16_edge.sync(prompt)
    sampler = f16_edge.sampler(params)
    ours, theirs = [], []
    for _ in range(16):
        ours.append(batch.sample(0))
        batch.extend(0, ours[-1:])
        theirs.append(sampler.sample())
        f16_edge.eval(theirs[-1:])
    sampler.close()
    assert ours == theirs

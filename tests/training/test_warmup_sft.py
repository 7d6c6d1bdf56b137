"""Warm-up data built by the relay loop with real cloud text, and SFT that learns from it."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from edge.clouds.fallback import FallbackCloud
from edge.core.loop import RelayLoop
from edge.core.policies import LearnedPolicy
from edge.core.prompt import build_prompt
from edge.core.relay import RelayLimits
from edge.llama import LlamaChat, LlamaModel
from protocol.calls import strip_calls
from protocol.sampling import SamplingParams
from tests.training.conftest import ShortRun
from training.config import load_config
from training.hf_backend import HFBatch
from training.hf_text import HFChat, HFCodec
from training.models import LoadedSLM
from training.problems import Problem, messages_for
from training.sft import train_sft
from training.warmup import (
    IGNORE,
    WarmupExample,
    build_warmup,
    entropy_scorer,
    insert_calls,
    slm_answers,
)


def test_commands_go_in_at_character_boundaries_with_a_number(hf_slm: LoadedSLM) -> None:
    codec = HFCodec(hf_slm.tokenizer)
    answer = "Café costs 3 € each: 3 * 4 = 12 🙂.\nThe answer is \\boxed{12}."
    for seed in range(20):
        text = insert_calls(answer, codec, random.Random(seed), count=3, sizes=[4, 16])
        assert strip_calls(text) == answer
        numbers = re.findall(r"<call>(\d*)</call>", text)
        assert numbers
        assert set(numbers) <= {"4", "16"}
        assert text.count("<call>") == 3


def warmup(
    slm: LoadedSLM, problems: list[Problem], cloud: FallbackCloud, no_call_share: float
) -> list[WarmupExample]:
    return build_warmup(
        problems, codec=HFCodec(slm.tokenizer), cloud=cloud, eos=slm.tokenizer.eos_token_id,
        chat=HFChat(slm.tokenizer, template=slm.chat_template), n_ctx=1024,
        no_call_share=no_call_share, max_calls=2, sizes=[4, 8, 32], seed=5,
    )  # fmt: skip


def test_examples_learn_the_slm_and_its_commands_never_the_cloud(
    hf_slm: LoadedSLM, expert_problems: tuple[list[Problem], Path], expert_cloud: FallbackCloud
) -> None:
    problems = expert_problems[0][:8]
    examples = warmup(hf_slm, problems, expert_cloud, no_call_share=0.0)
    decode = hf_slm.tokenizer.decode
    for example in examples:
        assert example.calls >= 1
        assert example.cloud_tokens > 0
        learned = decode(
            [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE]
        )
        assert re.search(r"<call>\d+</call>", learned)  # every command carries its number
        assert "<call></call>" not in decode(example.input_ids)
        masked_answer = [
            t for t, label in zip(example.input_ids, example.labels) if label == IGNORE
        ]
        prompt_tokens = build_prompt(HFChat(hf_slm.tokenizer, template=hf_slm.chat_template),
                                     messages_for(problems[0]), n_ctx=1024).tokens  # fmt: skip
        assert len(masked_answer) >= example.cloud_tokens  # cloud tokens are never learned
        assert example.labels[: len(prompt_tokens) - 40] == [IGNORE] * (len(prompt_tokens) - 40)
    no_calls = warmup(hf_slm, problems[:3], expert_cloud, no_call_share=1.0)
    assert all(e.calls == 0 and e.labels[-1] == hf_slm.tokenizer.eos_token_id for e in no_calls)


def test_examples_are_the_sequences_the_edge_loop_builds(
    hf_slm: LoadedSLM,
    slm: LlamaModel,
    expert_problems: tuple[list[Problem], Path],
    expert_cloud: FallbackCloud,
) -> None:
    problem = expert_problems[0][2]
    (example,) = warmup(hf_slm, [problem], expert_cloud, no_call_share=0.0)
    prompt = build_prompt(LlamaChat(slm), messages_for(problem), n_ctx=1024)
    assert example.input_ids[: len(prompt.tokens)] == list(prompt.tokens)
    loop = RelayLoop(slm, expert_cloud, LearnedPolicy(), limits=RelayLimits(max_tokens=300),
                     sampling=SamplingParams(temperature=0.0))  # fmt: skip
    list(loop.run(prompt, prefix=example.prefix))
    assert loop.record is not None
    answer = example.input_ids[len(prompt.tokens) :]
    answer = answer[:-1] if example.labels[-1] == hf_slm.tokenizer.eos_token_id else answer
    assert loop.record.tokens[: len(answer)] == answer


@pytest.mark.slow
def test_sft_overfits_a_tiny_batch(short_run: ShortRun) -> None:
    slm = short_run.slm
    examples = warmup(slm, short_run.problems[:4], short_run.cloud, no_call_share=0.25)
    config = load_config(
        None, None, ["sft.learning_rate=0.002", "sft.batch_size=4", "sft.epochs=12"]
    )
    folder = train_sft(slm, examples, short_run.folder, config, metrics=short_run.metrics)
    losses = [row["loss"] for row in short_run.metrics.read("sft") if "loss" in row]
    assert len(losses) == 12
    assert losses[-1] < 0.5 * losses[0]
    assert (folder / "model.safetensors").is_file()


def test_entropy_positions_take_the_most_uncertain_boundary(hf_slm: LoadedSLM) -> None:
    codec = HFCodec(hf_slm.tokenizer)
    answer = "Pens in boxes: 3 * 4 = 12.\nThe answer is \\boxed{12}."
    tokens = codec.tokenize(answer)
    scores = entropy_scorer(hf_slm.model)([1, 2, 3], tokens)
    assert len(scores) == len(tokens)
    assert all(s >= 0 for s in scores)
    peaked = [0.0] * len(tokens)
    peaked[5] = 9.0
    text = insert_calls(answer, codec, random.Random(0), count=1, sizes=[8], entropies=peaked)
    cut = len(codec.detokenize(tokens[:5]).decode())
    assert text == answer[:cut] + "<call>8</call>" + answer[cut:]


def test_the_slm_can_write_the_answers(
    hf_slm: LoadedSLM, expert_problems: tuple[list[Problem], Path]
) -> None:
    chat = HFChat(hf_slm.tokenizer, template=hf_slm.chat_template)
    batch = HFBatch(hf_slm.model, hf_slm.tokenizer, n_ctx=1024)
    answers = slm_answers(batch, chat, expert_problems[0][:3], n_ctx=1024, max_tokens=16)
    assert len(answers) == 3
    assert all(answer and "<call>" not in answer for answer in answers)

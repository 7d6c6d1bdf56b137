"""LlamaModel on the bundled SLM: the cache holds exactly the tokens we say, nothing is re-read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.llama import LlamaModel
from edge.llama.chat import render_chat
from edge.llama.kv_cache import KV_CACHE_TYPES
from protocol.errors import ContextOverflow, ModelUnavailable
from protocol.sampling import SamplingParams


@pytest.fixture(scope="module")
def model(slm_path: Path) -> Iterator[LlamaModel]:
    llama = LlamaModel(slm_path, n_ctx=512, n_threads=2)
    yield llama
    llama.close()


def test_eval_appends_only_the_new_tokens(model: LlamaModel) -> None:
    prompt = model.tokenize("The sky is blue because")
    model.sync(prompt)
    before = model.evaluated_tokens
    extra = model.tokenize(" light scatters")
    model.eval(extra)
    assert model.tokens == prompt + extra
    assert model.evaluated_tokens - before == len(extra)


def test_sync_reuses_the_longest_common_prefix(model: LlamaModel) -> None:
    base = model.tokenize("One two three four five six")
    model.sync(base)
    before = model.evaluated_tokens
    grown = [*base, *model.tokenize(" seven eight")]
    reused = model.sync(grown)
    assert reused == len(base)
    assert model.evaluated_tokens - before == len(grown) - len(base)
    assert model.tokens == grown
    # The same tokens again: only the last one is evaluated, to refresh its logits.
    assert model.sync(grown) == len(grown) - 1
    # A diverging prompt drops the cached tail.
    other = [*base[:3], *model.tokenize(" zebra")]
    assert model.sync(other) == 3
    assert model.tokens == other


def test_greedy_sampling_is_deterministic(model: LlamaModel) -> None:
    prompt = model.tokenize("1, 2, 3, 4,")

    def run() -> list[int]:
        model.sync(prompt)
        sampler = model.sampler(SamplingParams(temperature=0.0))
        out = []
        for _ in range(5):
            token = sampler.sample()
            out.append(token)
            model.eval([token])
        sampler.close()
        return out

    first = run()
    assert run() == first
    assert model.tokens[-5:] == first


def test_context_limits_are_errors(model: LlamaModel) -> None:
    with pytest.raises(ContextOverflow) as info:
        model.sync([1] * 600)
    assert (info.value.prompt_tokens, info.value.n_ctx) == (600, 512)
    with pytest.raises(ValueError, match="empty"):
        model.sync([])


def test_each_kv_cache_choice_is_the_cache_llama_cpp_keeps(slm_path: Path) -> None:
    held, predicted = {}, {}
    for choice in KV_CACHE_TYPES:
        llama = LlamaModel(slm_path, n_ctx=512, n_threads=2, kv_cache=choice)
        try:
            llama.sync(llama.tokenize("Grüße aus Zürich: 気温は低い. " * 8))
            held[choice] = len(llama.snapshot().data)  # the cells llama.cpp really wrote
            predicted[choice] = llama.kv_bytes()
        finally:
            llama.close()
    assert held["f16"] > held["q8_0"] > held["q8_0/q4_0"]
    # one position: keys + values; a q8_0 block holds 32 values in 34 bytes, a q4_0 block in 18
    assert predicted["q8_0"] / predicted["f16"] == pytest.approx(68 / 128)
    assert predicted["q8_0/q4_0"] / predicted["f16"] == pytest.approx(52 / 128)
    with pytest.raises(ValueError, match="kv_cache must be one of q8_0, q8_0/q4_0, f16"):
        LlamaModel(slm_path, n_ctx=512, kv_cache="q4_0")


def test_missing_file_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="no model file"):
        LlamaModel(tmp_path / "none.gguf")


def test_chat_template_continues_the_final_message(model: LlamaModel) -> None:
    template = model.metadata["tokenizer.chat_template"]
    user = {"role": "user", "content": "Hi"}
    opened = render_chat([user], template=template)
    continued = render_chat(
        [user, {"role": "assistant", "content": "Hello, I "}],
        template=template,
        continue_final=True,
    )
    assert opened.endswith("<|im_start|>assistant\n")
    assert continued == opened + "Hello, I "
    with pytest.raises(ValueError, match="final assistant"):
        render_chat([user], template=template, continue_final=True)


def draw(model: LlamaModel, params: SamplingParams, n: int) -> list[int]:
    sampler = model.sampler(params)
    out = []
    for _ in range(n):
        out.append(sampler.sample())
        model.eval(out[-1:])
    sampler.close()
    return out


def test_an_exact_sync_draws_the_same_whatever_the_cache_held(model: LlamaModel) -> None:
    text = "The history of the city of Lyon is long, with many twists and turns. In the year"
    prompt = model.tokenize(text)
    seeded = SamplingParams(temperature=1.0, seed=11)
    model.truncate(0)
    model.sync(prompt, exact=True)
    fresh = draw(model, seeded, 24)
    for history in ("The history of the city", "Something else entirely", text):
        model.truncate(0)
        model.sync(model.tokenize(history))  # whatever batches filled the cache before
        model.sync(prompt, exact=True)
        assert draw(model, seeded, 24) == fresh


def test_top_p_is_applied_before_temperature(model: LlamaModel) -> None:
    import numpy as np

    prompt = model.tokenize("My favourite colour is")
    model.sync(prompt)
    logits = np.ctypeslib.as_array(
        model.llama._ctx.get_logits_ith(-1), shape=(model.llama.n_vocab(),)
    ).astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    nucleus = set(order[: int(np.searchsorted(np.cumsum(probs[order]), 0.5)) + 1].tolist())
    drawn = set()
    for seed in range(60):  # a hot temperature after top-p still stays inside the nucleus
        model.sync(prompt)
        drawn |= set(draw(model, SamplingParams(temperature=50.0, top_p=0.5, seed=seed), 1))
    assert drawn <= nucleus
    assert len(drawn) > 1


def test_repetition_penalties_change_what_is_drawn(model: LlamaModel) -> None:
    prompt = model.tokenize("1, 1, 1, 1, 1, 1, 1,")
    model.sync(prompt)
    plain = draw(model, SamplingParams(temperature=0.0), 12)
    model.sync(prompt)
    penalised = draw(
        model, SamplingParams(temperature=0.0, presence_penalty=2.0, repeat_penalty=1.5), 12
    )
    assert len(set(penalised)) > len(set(plain))


def test_a_logit_bias_moves_what_is_drawn(model: LlamaModel) -> None:
    prompt = model.tokenize("The capital of France is")
    model.sync(prompt)
    (plain,) = draw(model, SamplingParams(temperature=0.0), 1)
    favoured = model.tokenize(" banana")[0]
    model.sync(prompt)
    biased = SamplingParams(temperature=0.0, logit_bias=((favoured, 100.0),))
    assert draw(model, biased, 1) == [favoured] != [plain]
    model.sync(prompt)
    banned = SamplingParams(temperature=0.0, logit_bias=((plain, -100.0),))
    assert draw(model, banned, 1) != [plain]


def test_sampling_params_are_checked() -> None:
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="logit_bias"):
        SamplingParams(logit_bias=((5, 101.0),))

"""LlamaModel on the bundled SLM: the cache holds exactly the tokens we say, nothing is re-read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.chat_template import render_chat
from edge.llama_model import LlamaModel, SamplingParams
from protocol.errors import ContextOverflow, ModelUnavailable


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

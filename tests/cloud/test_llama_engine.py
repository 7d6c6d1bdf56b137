"""The embedded engine in-process: prefix reuse counted in evaluated tokens, stops, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from cloud.engine import Delta, Generation
from cloud.llama_engine import LlamaEngine
from protocol.errors import ContextOverflow
from protocol.sampling import SamplingParams

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def engine(slm_path: Path) -> Iterator[LlamaEngine]:
    engine = LlamaEngine.load(slm_path, model_id="slm", n_ctx=512, n_threads=2)
    yield engine
    asyncio.run(engine.aclose())


def run(engine: LlamaEngine, prompt: str, generation: Generation) -> list[Delta]:
    async def collect() -> list[Delta]:
        return [d async for d in engine.complete(prompt, generation)]

    return asyncio.run(collect())


def test_first_delta_is_empty_and_last_has_usage(engine: LlamaEngine) -> None:
    deltas = run(engine, "Hello there", Generation(GREEDY, max_tokens=4))
    assert deltas[0] == Delta()
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == 4
    assert all(d.finish_reason is None for d in deltas[:-1])


def test_extended_prompt_evaluates_only_the_suffix(engine: LlamaEngine) -> None:
    prompt = "A list of fruits: apple, banana, cherry,"
    first = run(engine, prompt, Generation(GREEDY, max_tokens=5))
    text = "".join(d.text for d in first)
    before = engine.model.evaluated_tokens
    grown = prompt + text + " and more:"
    second = run(engine, grown, Generation(GREEDY, max_tokens=1))
    usage = second[-1].usage
    assert usage is not None
    evaluated = engine.model.evaluated_tokens - before
    assert evaluated == usage.prompt_tokens - usage.cached_tokens
    assert evaluated < usage.prompt_tokens / 2


def test_stop_sequence_is_not_emitted(engine: LlamaEngine) -> None:
    full = "".join(d.text for d in run(engine, "1, 2, 3, 4,", Generation(GREEDY, max_tokens=8)))
    stop = full.strip().split(",")[0]
    assert stop
    cut = run(engine, "1, 2, 3, 4,", Generation(GREEDY, max_tokens=8, stop=(stop,)))
    assert cut[-1].finish_reason == "stop"
    assert "".join(d.text for d in cut) == full[: full.index(stop)]


def test_context_overflow_is_raised_on_first_delta(engine: LlamaEngine) -> None:
    with pytest.raises(ContextOverflow):
        run(engine, "word " * 600, Generation(GREEDY, max_tokens=1))


def test_generation_stops_at_the_context_end(engine: LlamaEngine) -> None:
    prompt = "count: " + "1 " * 240
    deltas = run(engine, prompt, Generation(GREEDY, max_tokens=None))
    usage = deltas[-1].usage
    assert usage is not None
    assert usage.prompt_tokens + usage.completion_tokens <= 512


def test_a_completion_cut_inside_a_character_never_sends_half_of_it(engine: LlamaEngine) -> None:
    prompt = "用中文介绍一下猫。猫是"  # the SLM's tokens split most of these characters in two
    texts = []
    for limit in range(1, 7):
        deltas = run(engine, prompt, Generation(GREEDY, max_tokens=limit))
        texts.append("".join(d.text for d in deltas))
        assert deltas[-1].usage is not None
        assert deltas[-1].usage.completion_tokens == limit  # billed: the tokens were produced
    assert not any("\ufffd" in text for text in texts)
    assert len(set(texts)) < len(texts)  # some limit did end inside a character
    assert all(longer.startswith(shorter) for shorter, longer in pairwise(texts))


def test_gpu_layers_on_this_cpu_build_are_noted_not_fatal(
    slm_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = LlamaEngine.load(slm_path, n_ctx=256, n_threads=2, n_gpu_layers=4)
    assert engine.model.llama.model_params.n_gpu_layers == 0
    assert any("no GPU backend" in r.getMessage() for r in caplog.records)
    deltas = run(engine, "Hello", Generation(GREEDY, max_tokens=2))
    assert deltas[-1].usage is not None
    asyncio.run(engine.aclose())

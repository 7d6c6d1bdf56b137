"""The embedded engine answering several requests at once: sequences of one llama.cpp context."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cloud.cli import app
from cloud.engine import Delta, Generation
from cloud.llama_engine import LlamaEngine, default_parallel
from protocol.sampling import SamplingParams
from tests.conftest import relay_cloud

GREEDY = SamplingParams(temperature=0.0)
STORY = "The history of the harbour town, told in short chapters. Chapter"


@pytest.fixture(scope="module")
def engine(cloud_model_path: Path) -> Iterator[LlamaEngine]:
    engine = LlamaEngine.load(cloud_model_path, n_ctx=2048, n_threads=2, parallel=3)
    yield engine
    asyncio.run(engine.aclose())


async def deltas(engine: LlamaEngine, prompt: str, generation: Generation) -> list[Delta]:
    return [d async for d in engine.complete(prompt, generation)]


def test_concurrent_answers_all_finish_with_their_token_counts(engine: LlamaEngine) -> None:
    limits = [3, 9, 5, 12, 7, 4]  # more requests than sequences: some wait, then join

    async def all_of_them() -> list[list[Delta]]:
        return await asyncio.gather(*(
            deltas(engine, f"{STORY} {i}:", Generation(GREEDY, max_tokens=limit))
            for i, limit in enumerate(limits)
        ))  # fmt: skip

    answers = asyncio.run(all_of_them())
    for answer, limit in zip(answers, limits, strict=True):
        assert answer[0] == Delta()
        usage = answer[-1].usage
        assert usage is not None
        assert answer[-1].finish_reason == "length"
        assert usage.completion_tokens == limit
        assert "".join(d.text for d in answer)
    assert engine.scheduler.running == 0


def test_two_long_answers_both_stream_before_either_finishes(cloud_model_path: Path) -> None:
    engine = LlamaEngine.load(cloud_model_path, n_ctx=1024, n_threads=2, parallel=2)
    events: list[tuple[str, bool]] = []  # (which answer, whether this delta is its last)

    async def follow(name: str) -> None:
        generation = Generation(GREEDY, max_tokens=16)
        async for delta in engine.complete(f"{STORY} {name}:", generation):
            if delta.text or delta.finish_reason:
                events.append((name, delta.finish_reason is not None))

    async def both() -> None:
        await asyncio.gather(follow("a"), follow("b"))

    try:
        asyncio.run(both())
    finally:
        asyncio.run(engine.aclose())
    first_end = next(i for i, (_, last) in enumerate(events) if last)
    assert {name for name, _ in events[:first_end]} == {"a", "b"}
    assert sum(name == "a" for name, last in events[:first_end] if not last) >= 2
    assert sum(name == "b" for name, last in events[:first_end] if not last) >= 2


def test_a_client_that_goes_away_frees_its_sequence(cloud_model_path: Path) -> None:
    engine = LlamaEngine.load(cloud_model_path, n_ctx=1024, n_threads=2, parallel=1)

    async def leave_then_ask() -> list[Delta]:
        long = engine.complete(f"{STORY} 1:", Generation(GREEDY, max_tokens=400))
        received = [await anext(long), await anext(long)]
        assert received[0] == Delta()
        await long.aclose()  # the client went away after its first token
        return await deltas(engine, f"{STORY} 2:", Generation(GREEDY, max_tokens=3))

    try:
        after = asyncio.run(leave_then_ask())
        assert engine.scheduler.running == 0
    finally:
        asyncio.run(engine.aclose())
    assert after[-1].usage is not None
    assert after[-1].usage.completion_tokens == 3  # the only sequence was handed on


def test_a_request_extending_a_running_one_reuses_its_cells(engine: LlamaEngine) -> None:
    first = f"{STORY} 7. " + "The boats came in and went out again. " * 8

    async def overlapping() -> tuple[list[Delta], list[Delta]]:
        running = asyncio.ensure_future(deltas(engine, first, Generation(GREEDY, max_tokens=24)))
        await asyncio.sleep(0.5)  # the first one is being answered by now
        second = await deltas(engine, first + " Then", Generation(GREEDY, max_tokens=2))
        return await running, second

    one, two = asyncio.run(overlapping())
    usage, extended = one[-1].usage, two[-1].usage
    assert usage is not None
    assert extended is not None
    assert extended.cached_tokens >= usage.prompt_tokens - 2
    assert extended.cached_tokens < extended.prompt_tokens


LIGHTHOUSE = "Write a short story about a lighthouse keeper. " + "The lamp turned all night. " * 24
"""A prompt of more than two ``EXACT_BLOCK`` blocks, so that seeded answers re-use some."""


async def seeded_text(engine: LlamaEngine, prompt: str, seed: int = 7) -> tuple[str, int]:
    """The text of a seeded answer and how many of its prompt's tokens were re-used."""
    answer = await deltas(engine, prompt, Generation(SamplingParams(temperature=1.0, seed=seed),
                                                     max_tokens=16))  # fmt: skip
    usage = answer[-1].usage
    assert usage is not None
    return "".join(d.text for d in answer), usage.cached_tokens


def test_a_seed_gives_the_same_text_alone_or_queued_at_parallel_one(
    cloud_model_path: Path, engine: LlamaEngine
) -> None:
    single = LlamaEngine.load(cloud_model_path, n_ctx=2048, n_threads=2, parallel=1)
    unseeded = Generation(SamplingParams(temperature=1.0), max_tokens=8)
    longer = LIGHTHOUSE + "Then a storm came."

    async def text(prompt: str, generation: Generation) -> str:
        return "".join(d.text for d in await deltas(single, prompt, generation))

    async def alone_again_then_among_others() -> list[tuple[str, int]]:
        seen = [await seeded_text(single, LIGHTHOUSE), await seeded_text(single, LIGHTHOUSE),
                await seeded_text(single, longer)]  # fmt: skip
        await text("Tell me about cats.", unseeded)
        seen.append(await seeded_text(single, longer))
        mixed = await asyncio.gather(
            text("Tell me about cats.", unseeded), seeded_text(single, LIGHTHOUSE),
            text(LIGHTHOUSE + " Make it sad.", unseeded), seeded_text(single, LIGHTHOUSE),
        )  # fmt: skip
        return [*seen, mixed[1], mixed[3]]  # type: ignore[list-item]

    try:
        alone, again, extended, extended_fresh, queued, queued_late = asyncio.run(
            alone_again_then_among_others()
        )
    finally:
        asyncio.run(single.aclose())
    assert alone[1] == 0
    assert again[1] >= 128  # the blocks the first answer evaluated
    assert extended[1] >= 128
    assert extended_fresh[1] == queued[1] == 0  # after an unseeded answer: a fresh layout
    assert alone[0] == again[0] == queued[0] == queued_late[0]
    assert extended[0] == extended_fresh[0]
    assert asyncio.run(seeded_text(engine, LIGHTHOUSE)) == (alone[0], 0)  # parallel 3, alone


def test_a_seeded_answer_leaves_other_prompts_reusable(engine: LlamaEngine) -> None:
    async def seeded_then_unseeded() -> list[Delta]:
        await seeded_text(engine, LIGHTHOUSE, seed=3)
        return await deltas(engine, LIGHTHOUSE + " Then", Generation(GREEDY, max_tokens=2))

    usage = asyncio.run(seeded_then_unseeded())[-1].usage
    assert usage is not None
    assert usage.cached_tokens >= usage.prompt_tokens - 4  # the whole seeded prompt


def test_default_parallel_follows_the_context() -> None:
    assert [default_parallel(n) for n in (256, 512, 1024, 4096, 32768)] == [1, 1, 2, 8, 8]


def test_a_bad_parallel_is_one_line() -> None:
    result = CliRunner().invoke(app, ["serve", "--insecure-no-auth", "--parallel", "0"])
    assert result.exit_code == 2
    assert "greater than or equal to 1" in result.output
    assert "Traceback" not in result.output


def test_health_shows_parallel(cloud_model_path: Path) -> None:
    args = ("--model", str(cloud_model_path), "--insecure-no-auth", "--parallel", "3")
    with relay_cloud(*args) as base:
        health = httpx.get(f"{base}/health").json()
    assert health["parallel"] == 3

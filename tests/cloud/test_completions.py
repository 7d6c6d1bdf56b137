"""The embedded engine through the official openai SDK, on a real loopback server."""

from __future__ import annotations

import asyncio

import openai
import pytest

from edge.llama.chat import render_chat

PROMPT = "The three largest cities of France are"

MODEL = "cloud-test"


@pytest.fixture(scope="module")
def client(cloud_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cloud_url}/v1", api_key="key-a", max_retries=0)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["cloud-test"]


def test_streamed_completion_reports_usage(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model=MODEL,
        prompt=PROMPT,
        max_tokens=8,
        temperature=0.7,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage is not None
    assert usage.completion_tokens == 8
    assert usage.prompt_tokens > 5
    assert usage.total_tokens == usage.prompt_tokens + 8
    assert finishes[-1] == "length"
    assert finishes.count("length") == 1
    assert text.strip()


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=3, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_same_seed_same_text(client: openai.OpenAI) -> None:
    def sample() -> str:
        return (
            client.completions.create(
                model=MODEL, prompt=PROMPT, max_tokens=10, temperature=0.9, seed=1234
            )
            .choices[0]
            .text
        )

    sample()  # warm the cache so the next two take the same path
    assert sample() == sample()


def test_stop_sequence_cuts_the_text(client: openai.OpenAI) -> None:
    greedy = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    text = greedy.choices[0].text
    words = text.split()
    assert len(words) >= 3, text
    stop = words[2]
    cut = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[: text.index(stop)]


def test_prompt_extending_the_previous_one_reuses_the_cache(client: openai.OpenAI) -> None:
    first = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0)
    grown = PROMPT + first.choices[0].text + " and"
    second = client.completions.create(model=MODEL, prompt=grown, max_tokens=6, temperature=0)
    assert first.usage is not None
    assert second.usage is not None
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens
    assert cached / second.usage.prompt_tokens >= 0.5


def test_chat_continues_a_final_assistant_message(client: openai.OpenAI) -> None:
    messages = [
        {"role": "user", "content": "Name a city."},
        {"role": "assistant", "content": "A famous city is"},
    ]
    chat = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=6, temperature=0
    )
    # The same prompt sent raw must give the same greedy continuation.
    raw = client.completions.create(
        model=MODEL,
        prompt=render_chat(messages, template=None, continue_final=True),
        max_tokens=6,
        temperature=0,
    )
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content == raw.choices[0].text
    assert chat.usage is not None
    assert chat.usage.completion_tokens == 6


def test_chat_streams_role_then_content_then_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= 5


def test_concurrent_requests_are_queued_not_failed(cloud_url: str) -> None:
    async def one(client: openai.AsyncOpenAI, i: int) -> str | None:
        stream = await client.completions.create(
            model=MODEL, prompt=f"{i} plus {i} is", max_tokens=4, stream=True
        )
        finish = None
        async for chunk in stream:
            finish = chunk.choices[0].finish_reason or finish
        return finish

    async def main() -> list[str | None]:
        async with openai.AsyncOpenAI(base_url=f"{cloud_url}/v1", api_key="key-b") as client:
            return await asyncio.gather(*(one(client, i) for i in range(4)))

    assert all(f in ("stop", "length") for f in asyncio.run(main()))


def test_client_leaving_mid_stream_frees_the_engine(client: openai.OpenAI) -> None:
    stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200, stream=True)
    next(iter(stream))
    stream.close()
    after = client.completions.create(model=MODEL, prompt="Hello", max_tokens=2, timeout=30)
    assert after.usage is not None
    assert after.usage.completion_tokens <= 2

"""Cloud-client fixtures: each provider's emulator on a loopback port, and call requests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from benchmarks.servers import serve_in_thread
from edge.clouds.http import HttpCloud
from edge.core.cloud import CloudEnd, CloudItem, CloudRequest, CloudText
from protocol.wire import ChatMessage
from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.deepseek import DeepSeekEmulator
from tests.emulators.mistral import MistralEmulator
from tests.emulators.openai import OpenAIEmulator

QUESTION = "Why is the sky blue?"


@dataclass
class Served:
    """An emulator and where it listens: ``url`` is the base URL a user would configure."""

    emulator: Any
    url: str
    key: str
    model: str

    def cloud(self, api: str = "auto", **options: Any) -> HttpCloud:
        return HttpCloud(self.url, api=api, api_key=self.key, model=self.model,  # type: ignore[arg-type]
                         retries=0, **options)  # fmt: skip


@pytest.fixture
def openai_cloud() -> Iterator[Served]:
    emulator = OpenAIEmulator()
    with serve_in_thread(emulator.app) as url:
        yield Served(emulator, url, emulator.key, "gpt-4o-mini")


@pytest.fixture
def anthropic_cloud() -> Iterator[Served]:
    emulator = AnthropicEmulator(cache_min_tokens=16)
    with serve_in_thread(emulator.app) as url:
        yield Served(emulator, url, emulator.key, "claude-haiku-4-5")


@pytest.fixture
def deepseek_cloud() -> Iterator[Served]:
    emulator = DeepSeekEmulator()
    with serve_in_thread(emulator.app) as url:
        yield Served(emulator, url.removesuffix("/v1") + "/beta", emulator.key, "deepseek-chat")


@pytest.fixture
def mistral_cloud() -> Iterator[Served]:
    emulator = MistralEmulator()
    with serve_in_thread(emulator.app) as url:
        yield Served(emulator, url, emulator.key, "mistral-small-latest")


def call(partial: str, *, max_tokens: int = 64, seed: int | None = 7, answer: str = "a1",
         system: str = "") -> CloudRequest:  # fmt: skip
    """A call continuing ``partial`` as the answer to :data:`QUESTION`."""
    head = [ChatMessage(role="system", content=system)] if system else []
    messages = (*head, ChatMessage(role="user", content=QUESTION),
                ChatMessage(role="assistant", content=partial))  # fmt: skip
    prompt = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n{partial}"
    return CloudRequest(
        call_id=f"{answer}-call", answer_id=answer, prompt=prompt, messages=messages,
        max_tokens=max_tokens, seed=seed, stop=("<|im_end|>",),
    )  # fmt: skip


def streamed(items: list[CloudItem]) -> tuple[str, CloudEnd]:
    """The text a call streamed, and how it ended."""
    end = items[-1]
    assert isinstance(end, CloudEnd)
    return "".join(i.text for i in items if isinstance(i, CloudText)), end

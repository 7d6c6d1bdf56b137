"""A reply meets the call's stop strings (the SLM template's turn markers) even where the cloud
does not honour them, and a reply cut by length on the start of one ends without it."""

from __future__ import annotations

import pytest

from benchmarks.servers import serve_in_thread
from edge.clouds.http import HttpCloud
from edge.core.loop import RelayLoop
from edge.core.policies import LearnedPolicy
from edge.core.relay import RelayLimits
from edge.llama import LlamaModel
from protocol.events import CallFinished, TextEvent
from protocol.sampling import SamplingParams
from tests.edge.clouds.conftest import call, streamed
from tests.edge.conftest import ModelSpy, assert_consistent, prompt_for
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.scripted import Script, pieces

TURN = "The sky is blue.<|im_end|>\n<|im_start|>user\nAnd the sea?"
REPLY = pieces(TURN.removeprefix("The sky is "))
CUT = next(n for n in range(1, len(REPLY)) if "".join(REPLY[:n]).endswith("<|i"))
"""A token limit that ends the reply on the start of ``<|im_end|>``."""


@pytest.fixture
def marker_cloud() -> object:
    """A chat model whose text runs into the next turn (this emulator ignores ``stop``)."""
    emulator = OpenAIEmulator(script=Script(texts=(TURN,)))
    with serve_in_thread(emulator.app) as url:
        yield HttpCloud(url, api="chat", api_key=emulator.key, model="gpt-4o-mini", retries=0)


def test_a_whole_stop_string_ends_the_reply(marker_cloud: HttpCloud) -> None:
    text, end = streamed(list(marker_cloud.stream(call("The sky is ", max_tokens=40))))
    assert text == "blue."
    assert end.finish_reason == "stop"


def test_the_start_of_a_stop_string_at_a_length_cut_is_not_spliced(
    marker_cloud: HttpCloud,
) -> None:
    text, end = streamed(list(marker_cloud.stream(call("The sky is ", max_tokens=CUT))))
    assert text == "blue."
    assert end.finish_reason == "length"
    assert "'<|i' at its end may begin a stop marker; it was not spliced" in end.reason


def test_the_relay_never_splices_half_a_marker(slm: LlamaModel, marker_cloud: HttpCloud) -> None:
    spy = ModelSpy(slm)
    loop = RelayLoop(spy, marker_cloud, LearnedPolicy(), limits=RelayLimits(max_tokens=30),
                     sampling=SamplingParams(temperature=0))  # type: ignore[arg-type]  # fmt: skip
    prompt = prompt_for(spy, [{"role": "user", "content": "Why is the sky blue?"}])
    events = list(loop.run(prompt, prefix=f"The sky is <call>{CUT}</call>"))
    assert_consistent(spy, loop.record, events)  # type: ignore[arg-type]
    assert "<|" not in "".join(e.text for e in events if isinstance(e, TextEvent))
    finished = next(e for e in events if isinstance(e, CallFinished))
    assert "not spliced" in finished.note

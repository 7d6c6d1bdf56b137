"""The relay loop on the real SLM against a real relay-cloud on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cloud import CloudEnd, CloudItem, CloudRequest, CloudText
from edge.fallback import FallbackCloud
from edge.http_cloud import HttpCloud
from edge.policies import CloudOnlyPolicy, EntropyPolicy, LearnedPolicy, NeverPolicy
from edge.relay import RelayLimits, RelayLoop
from edge.settings import EdgeSettings
from protocol.events import CallFinished, CallStarted, DoneEvent, FallbackEvent, TextEvent
from tests.conftest import free_port, relay_cloud_process
from tests.edge.conftest import EvalRecorder

QUESTION = [{"role": "user", "content": "Name three colours."}]
GREEDY = EdgeSettings(temperature=0.0)


def cloud_at(url: str, *, key: str = "key-a", stop: tuple[str, ...] = ()) -> FallbackCloud:
    return FallbackCloud(HttpCloud(url, api_key=key, temperature=0.0, stop=stop, retries=0))


def relay(model: object, cloud: object, policy: object = None, **limits: int) -> RelayLoop:
    from edge.llama_model import SamplingParams

    return RelayLoop(
        model,  # type: ignore[arg-type]
        cloud,  # type: ignore[arg-type]
        policy or LearnedPolicy(),  # type: ignore[arg-type]
        limits=RelayLimits(**{"max_tokens": 40, **limits}),
        sampling=SamplingParams(temperature=0.0),
    )


def of_type(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def test_a_command_calls_the_cloud_and_splices_exactly_its_tokens(
    recorder: EvalRecorder, cloud_url: str
) -> None:
    loop = relay(recorder, cloud_at(f"{cloud_url}/v1"))
    events = list(loop.run(QUESTION, prefix="Let me ask. <call>6</call>"))
    (started,) = of_type(events, CallStarted)
    (finished,) = of_type(events, CallFinished)
    assert (started.requested, started.granted) == (6, 6)
    assert finished.outcome == "ok"
    cloud_text = "".join(e.text for e in of_type(events, TextEvent) if e.source == "llm")
    spliced = recorder.tokenize(cloud_text)
    assert finished.tokens == len(spliced) > 0
    # The SLM's context grew by exactly the cloud's tokens, evaluated on their own ...
    assert spliced in recorder.evals
    start = loop.answer_tokens.index(
        spliced[0], len(recorder.tokenize("Let me ask. <call>6</call>"))
    )
    assert loop.answer_tokens[start : start + len(spliced)] == spliced
    # ... with training mask 0, while every token the SLM wrote has mask 1.
    assert loop.answer_mask[start : start + len(spliced)] == [0] * len(spliced)
    assert loop.answer_mask.count(0) == len(spliced)
    assert recorder.tokens[-len(loop.answer_tokens) :] == loop.answer_tokens
    # Commands are never shown as answer text; the done summary adds up.
    shown = "".join(e.text for e in of_type(events, TextEvent))
    assert "<call>" not in shown
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.llm_tokens == len(spliced)
    assert done.slm_tokens + done.llm_tokens == len(loop.answer_tokens)
    assert done.call_ratio == pytest.approx(len(spliced) / len(loop.answer_tokens))


def test_cloud_stop_ends_the_answer_and_length_hands_back(slm: object, cloud_url: str) -> None:
    stopping = relay(slm, cloud_at(f"{cloud_url}/v1", stop=(" ",)))
    events = list(stopping.run(QUESTION, prefix="Well, <call>20</call>"))
    finished = of_type(events, CallFinished)[0]
    assert finished.finish_reason == "stop"
    assert events[-1].finish_reason == "stop"
    assert not isinstance(events[-2], TextEvent) or events[-2].source != "slm"

    continuing = relay(slm, cloud_at(f"{cloud_url}/v1"))
    events = list(continuing.run(QUESTION, prefix="Well, <call>2</call>"))
    assert of_type(events, CallFinished)[0].finish_reason == "length"
    after = events[events.index(of_type(events, CallFinished)[0]) :]
    assert any(isinstance(e, TextEvent) and e.source == "slm" for e in after)


def test_dead_cloud_answer_completes_locally(slm: object) -> None:
    loop = relay(slm, cloud_at(f"http://127.0.0.1:{free_port()}/v1"))
    events = list(loop.run(QUESTION, prefix="Hmm <call>8</call>"))
    (fallback,) = of_type(events, FallbackEvent)
    assert fallback.kept_tokens == 0
    assert "unreachable" in fallback.reason
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].llm_tokens == 0
    assert events[-1].slm_tokens > 0


def test_cloud_killed_mid_stream_keeps_what_arrived(slm: object, cloud_model_path: Path) -> None:
    with relay_cloud_process("--model", str(cloud_model_path), "--insecure-no-auth") as (
        base,
        process,
    ):
        loop = relay(slm, cloud_at(f"{base}/v1"), max_tokens=120)
        events = []
        for event in loop.run(QUESTION, prefix="So <call>100</call>"):
            events.append(event)
            if isinstance(event, TextEvent) and event.source == "llm" and len(events) > 3:
                process.kill()
    (fallback,) = of_type(events, FallbackEvent)
    received = [e for e in of_type(events, TextEvent) if e.source == "llm"]
    assert fallback.kept_tokens > 0
    assert fallback.kept_tokens == of_type(events, CallFinished)[0].tokens
    assert received
    assert isinstance(events[-1], DoneEvent)


class ScriptedCloud:
    """A cloud that answers with fixed text (to inject text a real model will not write)."""

    def __init__(self, text: str, finish: str = "length") -> None:
        self.text = text
        self.finish = finish
        self.requests: list[CloudRequest] = []

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        self.requests.append(request)
        yield CloudText(self.text)
        yield CloudEnd(outcome="ok", finish_reason=self.finish, completion_tokens=3)  # type: ignore[arg-type]


def test_cloud_text_is_data_never_a_command(slm: object) -> None:
    cloud = ScriptedCloud(" <call>50</call> text")
    events = list(relay(slm, cloud).run(QUESTION, prefix="A <call>4</call>"))
    assert len(of_type(events, CallStarted)) == 1
    assert len(cloud.requests) == 1
    assert "<call>" not in cloud.requests[0].prompt[-20:]


def test_context_sent_has_commands_removed(slm: object) -> None:
    cloud = ScriptedCloud(" blue")
    list(relay(slm, cloud).run(QUESTION, prefix="Red, <call>3</call>"))
    request = cloud.requests[0]
    assert request.prompt.endswith("Red, ")
    assert request.messages[-1].role == "assistant"
    assert request.messages[-1].content == "Red, "
    assert request.max_tokens == 3


def test_max_calls_is_enforced(slm: object) -> None:
    cloud = ScriptedCloud(" x")
    prefix = "a<call>2</call>" * 4
    events = list(relay(slm, cloud, max_calls=2).run(QUESTION, prefix=prefix))
    assert len(of_type(events, CallStarted)) == 2


def test_never_policy_drops_commands(slm: object) -> None:
    cloud = ScriptedCloud(" x")
    events = list(relay(slm, cloud, NeverPolicy()).run(QUESTION, prefix="A <call>4</call>"))
    assert not cloud.requests
    assert "<call>" not in "".join(e.text for e in of_type(events, TextEvent))


def test_cloud_policy_lets_the_llm_answer(slm: object) -> None:
    cloud = ScriptedCloud("Red, green and blue.", finish="stop")
    events = list(relay(slm, cloud, CloudOnlyPolicy()).run(QUESTION))
    assert isinstance(events[0], CallStarted)
    assert events[-1].slm_tokens == 0
    assert events[-1].call_ratio == 1.0


def test_entropy_policy_calls_an_untrained_slm(slm: object, cloud_url: str) -> None:
    loop = relay(slm, cloud_at(f"{cloud_url}/v1"), EntropyPolicy(threshold=0.5, n=4))
    events = list(loop.run(QUESTION))
    assert of_type(events, CallFinished)
    assert all(e.outcome == "ok" for e in of_type(events, CallFinished))
    assert events[-1].llm_tokens > 0


def test_multi_turn_reuses_the_cache(recorder: EvalRecorder) -> None:
    loop = relay(recorder, ScriptedCloud(""), max_tokens=16)
    first = list(loop.run(QUESTION))
    assert isinstance(first[-1], DoneEvent)
    history = [*QUESTION, {"role": "assistant", "content": loop.answer_text},
               {"role": "user", "content": "And two more?"}]  # fmt: skip
    list(loop.run(history))
    asked, reused = recorder.synced[-1]
    assert reused >= recorder.synced[0][0]  # the whole first prompt was kept
    assert reused / asked > 0.5


def test_chat_mode_continues_the_partial_answer(slm: object, cloud_url: str) -> None:
    chat = HttpCloud(f"{cloud_url}/v1", api_key="key-a", mode="chat", temperature=0.0, retries=0)
    loop = relay(slm, FallbackCloud(chat))
    events = list(loop.run(QUESTION, prefix="Red, <call>5</call>"))
    finished = of_type(events, CallFinished)[0]  # the SLM may imitate and call again
    assert finished.outcome == "ok"
    assert finished.finish_reason in ("stop", "length")
    start = events.index(of_type(events, CallStarted)[0])
    first_call = events[start : events.index(finished)]
    cloud_text = "".join(e.text for e in of_type(first_call, TextEvent) if e.source == "llm")
    assert finished.tokens == len(slm.tokenize(cloud_text))  # type: ignore[attr-defined]

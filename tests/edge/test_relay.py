"""The relay loop on the real SLM, against a real relay-cloud on loopback where it matters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.clouds.fallback import FallbackCloud
from edge.clouds.http import HttpCloud
from edge.core.cloud import CloudEnd, CloudItem, CloudRequest, CloudText
from edge.core.loop import RelayLoop
from edge.core.policies import (
    CloudOnlyPolicy,
    EntropyPolicy,
    LearnedPolicy,
    NeverPolicy,
    PolicyState,
    RandomRouter,
)
from edge.core.relay import RelayLimits
from protocol.events import (
    CallFinished,
    CallSkipped,
    CallStarted,
    DoneEvent,
    FallbackEvent,
    TextEvent,
)
from protocol.sampling import SamplingParams
from tests.conftest import free_port, relay_cloud_process
from tests.edge.conftest import (
    Events,
    ModelSpy,
    assert_consistent,
    of_type,
    prompt_for,
    shown_text,
)

QUESTION = [{"role": "user", "content": "Name three colours."}]


def cloud_at(url: str, *, key: str = "key-a", temperature: float = 0.0) -> FallbackCloud:
    return FallbackCloud(HttpCloud(url, api_key=key, temperature=temperature, retries=0))


def relay(
    model: object, cloud: object, policy: object = None, temperature: float = 0.0, **limits: int
) -> RelayLoop:
    return RelayLoop(
        model,  # type: ignore[arg-type]
        cloud,  # type: ignore[arg-type]
        policy or LearnedPolicy(),  # type: ignore[arg-type]
        limits=RelayLimits(**{"max_tokens": 40, **limits}),
        sampling=SamplingParams(temperature=temperature),
    )


def answer(loop: RelayLoop, messages: list[dict[str, str]] = QUESTION, **options: object) -> list:
    return list(loop.run(prompt_for(loop.model, messages), **options))  # type: ignore[arg-type]


class ScriptedCloud:
    """A cloud that answers with fixed text (to inject text a real model will not write)."""

    def __init__(self, text: str, finish: str = "length") -> None:
        self.text = text
        self.finish = finish
        self.requests: list[CloudRequest] = []

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        self.requests.append(request)
        if self.text:
            yield CloudText(self.text)
        yield CloudEnd(outcome="ok", finish_reason=self.finish, completion_tokens=3)  # type: ignore[arg-type]


def test_a_command_calls_the_cloud_and_splices_exactly_its_tokens(
    spy: ModelSpy, cloud_url: str
) -> None:
    loop = relay(spy, cloud_at(f"{cloud_url}/v1"))
    events = answer(loop, prefix="Let me ask. <call>6</call>")
    (started,) = of_type(events, CallStarted)[:1]
    finished = of_type(events, CallFinished)[0]
    assert (started.requested, started.granted) == (6, 6)
    assert finished.outcome == "ok"
    spliced = spy.tokenize(shown_text(events[: events.index(finished)], "llm"))
    assert finished.tokens == len(spliced) > 0
    # The SLM's context grew by exactly the cloud's tokens, evaluated on their own ...
    prefix_evals = len(spy.tokenize("Let me ask. <call>6</call>"))  # one eval per forced token
    after = [t for tokens in spy.evals[prefix_evals:] for t in tokens]
    assert after[: len(spliced)] == spliced
    assert not spy.rewinds
    record = loop.record
    assert record is not None
    start = len(spy.tokenize("Let me ask. <call>6</call>"))
    assert record.tokens[start : start + len(spliced)] == spliced
    # ... with training mask 0, while every token the SLM wrote has mask 1.
    assert record.mask[start : start + len(spliced)] == [0] * len(spliced)
    assert record.mask[:start] == [1] * start
    assert_consistent(spy, record, events)
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.llm_tokens == record.mask.count(0) == sum(c.tokens for c in record.calls)
    assert done.slm_tokens + done.llm_tokens == len(record.tokens)
    assert done.call_ratio == pytest.approx(done.llm_tokens / len(record.tokens))


def test_text_after_close_in_the_same_token_is_left_out(spy: ModelSpy) -> None:
    # ">." is one token: the SLM's turn ends at ">", the "." never reaches context or screen.
    (mixed,) = spy.tokenize(">.")
    forced = [*spy.tokenize("Red, <call>3</call"), mixed]
    cloud = ScriptedCloud(" green and blue")
    loop = relay(spy.force(forced), cloud, max_tokens=20)
    events = answer(loop)
    record = loop.record
    assert record is not None
    assert record.text.startswith("Red, <call>3</call> green and blue")
    assert mixed not in record.tokens
    assert spy.tokenize(">") == record.tokens[len(forced) - 1 : len(forced)]
    assert record.mask[: len(forced)] == [1] * len(forced)
    assert_consistent(spy, record, events)


def test_prefix_text_after_a_command_follows_the_cloud_text(spy: ModelSpy) -> None:
    loop = relay(spy, ScriptedCloud(" green"), max_tokens=16)
    events = answer(loop, prefix="Red,<call>3</call>.")
    record = loop.record
    assert record is not None
    assert record.text.startswith("Red,<call>3</call> green.")
    shown = [e.text for e in of_type(events, TextEvent)]
    assert shown[:4] == ["Red", ",", " green", "."]
    assert_consistent(spy, record, events)


class CallAt:
    """A policy that asks for ``n`` tokens before answer token ``at`` (once)."""

    name = "call-at"
    uses_entropy = False

    def __init__(self, at: int, n: int = 2) -> None:
        self.at, self.n = at, n

    def on_command(self, command: object) -> int:
        return 0

    def before_token(self, state: PolicyState) -> int:
        return self.n if state.answer_tokens >= self.at and state.calls == 0 else 0


def test_a_call_waits_for_a_whole_character(spy: ModelSpy) -> None:
    smile = spy.tokenize("🙂")  # two byte-level tokens, each half a character
    assert len(smile) == 2
    cloud = ScriptedCloud(" ok")
    loop = relay(spy.force([*spy.tokenize("Hi"), *smile]), cloud, CallAt(at=2), max_tokens=12)
    events = answer(loop)
    record = loop.record
    assert record is not None
    assert record.text.startswith("Hi🙂 ok")
    assert cloud.requests[0].prompt.endswith("Hi🙂")
    assert "\ufffd" not in record.shown
    assert_consistent(spy, record, events)


def test_an_answer_ending_mid_character_drops_the_unfinished_character(spy: ModelSpy) -> None:
    half = spy.tokenize("🙂")[:1]
    loop = relay(spy.force([*spy.tokenize("Hi"), *half]), ScriptedCloud(""), max_tokens=3)
    events = answer(loop)
    record = loop.record
    assert record is not None
    assert record.shown == "Hi"  # not "Hi\ufffd"
    assert record.tokens == spy.tokenize("Hi")  # the half character left the context too
    assert_consistent(spy, record, events)


def test_earlier_turns_reach_the_cloud_without_commands(slm: object) -> None:
    history = [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue,<call>4</call> of course."},
        {"role": "user", "content": "And another?"},
    ]
    cloud = ScriptedCloud(" Red")
    loop = relay(slm, cloud, max_tokens=12)
    answer(loop, history, prefix="Sure:<call>2</call>")
    (request,) = cloud.requests
    assert "<call>" not in request.prompt
    assert "Blue, of course." in request.prompt
    assert all("<call>" not in m.content for m in request.messages)
    assert request.messages[1].content == "Blue, of course."
    assert request.messages[-1].content == "Sure: "
    # ... while the SLM's own context keeps the commands it wrote.
    assert "Blue,<call>4</call>" in slm.detokenize(prompt_for(slm, history).tokens).decode()  # type: ignore[attr-defined]


def test_the_cloud_stops_at_the_templates_markers_and_its_text_stays_plain(spy: ModelSpy) -> None:
    cloud = ScriptedCloud(" blue<|im_end|>")
    loop = relay(spy, cloud, max_tokens=20)
    events = answer(loop, prefix="Red,<call>4</call>")
    assert set(cloud.requests[0].stop) >= {"<|im_start|>", "<|im_end|>"}
    record = loop.record
    assert record is not None
    im_end = spy.tokenize_prompt("<|im_end|>")[-1]
    assert im_end not in record.tokens  # cloud text is never parsed into control tokens
    assert_consistent(spy, record, events)


def test_zero_and_empty_commands_and_the_call_limit_are_visible(slm: object) -> None:
    cloud = ScriptedCloud(" x")
    loop = relay(slm, cloud, max_calls=1, max_tokens=60)
    events = answer(loop, prefix="a<call>0</call>b<call></call>c<call>2</call>d<call>3</call>")
    skipped = [(e.reason, e.raw) for e in of_type(events, CallSkipped)]
    assert skipped == [
        ("zero", "<call>0</call>"),
        ("empty", "<call></call>"),
        ("limit", "<call>3</call>"),
    ]
    assert len(cloud.requests) == 1
    assert "<call>" not in shown_text(events)


def test_never_policy_skips_commands(slm: object) -> None:
    cloud = ScriptedCloud(" x")
    events = answer(relay(slm, cloud, NeverPolicy()), prefix="A <call>4</call>")
    assert not cloud.requests
    skipped = of_type(events, CallSkipped)  # the SLM may imitate the command: same fate
    assert skipped[0].raw == "<call>4</call>"
    assert {e.reason for e in skipped} == {"policy"}
    assert "<call>" not in shown_text(events)


def test_cloud_text_past_the_room_is_cut_where_it_is_shown(spy: ModelSpy) -> None:
    long_text = " one two three four five six seven eight nine ten eleven twelve"
    loop = relay(spy, ScriptedCloud(long_text), max_tokens=10)
    events = answer(loop, prefix="Count:<call>9</call>")
    record = loop.record
    assert record is not None
    (finished,) = of_type(events, CallFinished)
    assert len(record.tokens) == 10
    assert finished.tokens == record.mask.count(0) == 10 - len(spy.tokenize("Count:<call>9</call>"))
    assert shown_text(events, "llm") == record.text.removeprefix("Count:<call>9</call>")
    assert long_text.startswith(shown_text(events, "llm"))
    assert "token limit" in finished.note
    assert events[-1].finish_reason == "length"
    assert_consistent(spy, record, events)


@pytest.mark.parametrize("text", ["", " ", "\n"])
def test_a_cloud_stop_without_text_hands_back(slm: object, text: str) -> None:
    loop = relay(slm, ScriptedCloud(text, finish="stop"), CloudOnlyPolicy(), max_tokens=8)
    events = answer(loop)
    assert of_type(events, CallFinished)[0].finish_reason == "stop"
    assert events[-1].slm_tokens > 0  # the answer never ends empty because of a call


def test_cloud_stop_ends_the_answer_and_length_hands_back(slm: object) -> None:
    stopping = relay(slm, ScriptedCloud(" done.", finish="stop"))
    events = answer(stopping, prefix="Well, <call>20</call>")
    assert of_type(events, CallFinished)[0].finish_reason == "stop"
    assert events[-1].finish_reason == "stop"
    assert isinstance(events[-2], CallFinished)

    continuing = relay(slm, ScriptedCloud(" and"))
    events = answer(continuing, prefix="Well, <call>2</call>")
    finished = of_type(events, CallFinished)[0]
    assert finished.finish_reason == "length"
    after = events[events.index(finished) :]
    assert any(isinstance(e, TextEvent) and e.source == "slm" for e in after)


def test_dead_cloud_answer_completes_locally(slm: object) -> None:
    loop = relay(slm, cloud_at(f"http://127.0.0.1:{free_port()}/v1"))
    events = answer(loop, prefix="Hmm <call>8</call>")
    (fallback,) = of_type(events, FallbackEvent)
    assert fallback.kept_tokens == 0
    assert "cannot reach" in fallback.reason
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].llm_tokens == 0
    assert events[-1].slm_tokens > 0


def test_cloud_killed_mid_stream_keeps_what_arrived(spy: ModelSpy, cloud_model_path: Path) -> None:
    with relay_cloud_process("--model", str(cloud_model_path), "--insecure-no-auth") as (
        base,
        process,
    ):
        loop = relay(spy, cloud_at(f"{base}/v1"), max_tokens=120)
        events = []
        prompt = prompt_for(spy, QUESTION)
        for event in loop.run(prompt, prefix="So <call>100</call>"):
            events.append(event)
            if isinstance(event, TextEvent) and event.source == "llm" and len(events) > 3:
                process.kill()
    (fallback,) = of_type(events, FallbackEvent)
    assert fallback.kept_tokens > 0
    assert fallback.kept_tokens == of_type(events, CallFinished)[0].tokens
    assert isinstance(events[-1], DoneEvent)
    assert loop.record is not None
    assert_consistent(spy, loop.record, events)


def test_cloud_text_is_data_never_a_command(slm: object) -> None:
    cloud = ScriptedCloud(" <call>50</call> text")
    events = answer(relay(slm, cloud), prefix="A <call>4</call>")
    assert len(of_type(events, CallStarted)) == 1
    assert len(cloud.requests) == 1


def test_the_cloud_sees_each_command_as_a_space(slm: object) -> None:
    first_cloud, second_cloud = ScriptedCloud(" blue"), ScriptedCloud(" blue")
    answer(relay(slm, first_cloud, max_tokens=20), prefix="It is<call>3</call>")
    answer(relay(slm, second_cloud, max_tokens=20), prefix="Red, <call>3</call>")
    first, second = first_cloud.requests[0], second_cloud.requests[0]
    assert first.prompt.endswith("It is ")
    assert second.prompt.endswith("Red, ")
    assert second.messages[-1].content == "Red, "
    assert second.max_tokens == 3


def test_cloud_policy_lets_the_llm_answer(slm: object) -> None:
    cloud = ScriptedCloud("Red, green and blue.", finish="stop")
    events = answer(relay(slm, cloud, CloudOnlyPolicy()))
    assert isinstance(events[0], CallStarted)
    assert events[-1].slm_tokens == 0
    assert events[-1].call_ratio == 1.0


def test_random_router_routes_whole_queries_reproducibly(slm: object) -> None:
    router = RandomRouter(0.5)
    decisions = [router.routes_to_cloud(seed) for seed in range(200)]
    assert decisions == [router.routes_to_cloud(seed) for seed in range(200)]
    assert 70 < sum(decisions) < 130
    routed = next(seed for seed, cloud in enumerate(decisions) if cloud)
    local = next(seed for seed, cloud in enumerate(decisions) if not cloud)
    cloud = ScriptedCloud("Red.", finish="stop")
    events = answer(relay(slm, cloud, router, max_tokens=8), seed=routed)
    assert events[-1].call_ratio == 1.0
    events = answer(relay(slm, cloud, router, max_tokens=8), seed=local)
    assert events[-1].calls == 0
    assert len(cloud.requests) == 1


def test_entropy_policy_calls_an_untrained_slm(spy: ModelSpy, cloud_url: str) -> None:
    loop = relay(spy, cloud_at(f"{cloud_url}/v1"), EntropyPolicy(threshold=0.5, n=4))
    events = answer(loop)
    assert of_type(events, CallFinished)
    assert all(e.outcome == "ok" for e in of_type(events, CallFinished))
    assert events[-1].llm_tokens > 0
    assert loop.record is not None
    assert_consistent(spy, loop.record, events)


def comparable(events: Events) -> list[str]:
    """Events without their timings and ids."""
    ignore = {"latency_ms", "wall_s", "call_id"}
    return [e.model_dump_json(exclude=ignore & set(type(e).model_fields)) for e in events]


def test_the_same_seed_gives_the_same_answer_with_calls(spy: ModelSpy, cloud_url: str) -> None:
    def run(seed: int) -> list[str]:
        cloud = cloud_at(f"{cloud_url}/v1", temperature=0.9)
        loop = relay(spy, cloud, EntropyPolicy(threshold=2.0, n=6), temperature=0.9)
        return comparable(answer(loop, seed=seed))

    first = run(7)
    assert any('"call_finished"' in e and '"ok"' in e for e in first)
    assert run(7) == first
    assert run(8) != first


def test_multi_turn_reuses_the_cache(spy: ModelSpy) -> None:
    loop = relay(spy, ScriptedCloud(""), max_tokens=16)
    first = answer(loop)
    assert isinstance(first[-1], DoneEvent)
    assert loop.record is not None
    history = [*QUESTION, {"role": "assistant", "content": loop.record.text},
               {"role": "user", "content": "And two more?"}]  # fmt: skip
    answer(loop, history)
    asked, reused = spy.synced[-1]
    assert reused >= spy.synced[0][0]  # the whole first prompt was kept
    assert reused / asked > 0.5


def test_chat_mode_continues_the_partial_answer(slm: object, cloud_url: str) -> None:
    chat = HttpCloud(
        f"{cloud_url}/v1", api_key="key-a", api="chat-continue", temperature=0.0, retries=0
    )
    loop = relay(slm, FallbackCloud(chat))
    events = answer(loop, prefix="Red, <call>5</call>")
    finished = of_type(events, CallFinished)[0]  # the SLM may imitate and call again
    assert finished.outcome == "ok"
    start = events.index(of_type(events, CallStarted)[0])
    first_call = events[start : events.index(finished)]
    assert finished.tokens == len(slm.tokenize(shown_text(first_call, "llm")))  # type: ignore[attr-defined]


def test_a_looping_answer_is_stopped_by_the_repeat_guard(spy: ModelSpy) -> None:
    loop_text = spy.tokenize(" and then the old ship sailed on into the night")
    assert len(loop_text) * 4 >= 32  # a stretch long enough for the guard
    forced = loop_text * 6
    loop = RelayLoop(spy.force(forced), ScriptedCloud(""), NeverPolicy(),
                     limits=RelayLimits(max_tokens=200, repeat_guard=4),
                     sampling=SamplingParams(temperature=0.0))  # fmt: skip
    events = answer(loop)
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.slm_tokens <= len(loop_text) * 5
    assert "repeated 4 times" in done.note
    unguarded = relay(spy.force(loop_text * 6), ScriptedCloud(""), NeverPolicy(), max_tokens=60)
    assert answer(unguarded)[-1].note == ""


class WordByWordCloud(ScriptedCloud):
    """A cloud that streams its text a few characters at a time, as a real server does."""

    def __init__(self, text: str, size: int) -> None:
        super().__init__(text)
        self.size = size

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        self.requests.append(request)
        for start in range(0, len(self.text), self.size):
            yield CloudText(self.text[start : start + self.size])
        yield CloudEnd(outcome="ok", finish_reason="length", completion_tokens=10)


def test_cloud_text_events_say_the_tokens_they_added(spy: ModelSpy) -> None:
    sentence = " Light from the sun is made of many colours, first"
    pieces = [" " + word for word in sentence.split(" ") if word]

    class WordCloud:  # a word per event, as servers stream
        def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
            yield from (CloudText(piece) for piece in pieces)
            yield CloudEnd(outcome="ok", finish_reason="length", completion_tokens=len(pieces))

    events = answer(relay(spy, WordCloud(), max_tokens=60), prefix="Sky:<call>30</call>")
    cloud_text = [e for e in of_type(events, TextEvent) if e.source == "llm"]
    assert len(cloud_text) == len(pieces)
    assert all(e.n_tokens >= 1 for e in cloud_text)
    assert sum(e.n_tokens for e in cloud_text) == of_type(events, CallFinished)[0].tokens


@pytest.mark.parametrize("size", [1, 3, 7])
def test_cloud_tokens_are_evaluated_while_they_stream(spy: ModelSpy, size: int) -> None:
    text = " Photosynthesis turns light, water and CO₂ into sugar 🌱 and oxygen, every day."
    loop = relay(spy, WordByWordCloud(text, size), max_tokens=80)
    events = answer(loop, prefix="Plants<call>40</call>")
    record = loop.record
    assert record is not None
    finished = of_type(events, CallFinished)[0]
    cloud_evals = [e for e in spy.evals if len(e) > 1 and e != spy.tokenize("Plants")]
    assert len(cloud_evals) >= 2  # blocks went in before the stream ended
    start = len(spy.tokenize("Plants<call>40</call>"))
    expected = spy.tokenize(text)
    # ... and the context holds exactly the whole text's own tokens, whatever the pieces were.
    assert record.tokens[start : start + len(expected)] == expected
    assert finished.tokens == len(expected)
    assert_consistent(spy, record, events)

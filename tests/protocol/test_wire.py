"""Wire models and relay events: validation and JSON round trips."""

from __future__ import annotations

from contextlib import suppress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from protocol.events import (
    BudgetEvent,
    CallFinished,
    CallStarted,
    DoneEvent,
    FallbackEvent,
    TextEvent,
    parse_event,
)
from protocol.wire import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessage,
    Completion,
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    ErrorBody,
    RelayCall,
    StreamOptions,
    Usage,
)


def test_completion_request_defaults_and_stop_forms() -> None:
    request = CompletionRequest(prompt="hi")
    assert (request.max_tokens, request.stream, request.include_usage) == (16, False, False)
    assert request.stop_sequences == ()
    assert CompletionRequest(prompt="x", stop="\n").stop_sequences == ("\n",)
    assert CompletionRequest(prompt=["x"], stop=["a", "b"]).prompt_text == "x"


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": ["a", "b"]},
        {"prompt": "x", "n": 2},
        {"prompt": "x", "max_tokens": 0},
        {"prompt": "x", "temperature": 3},
        {"prompt": "x", "top_p": 0},
        {"prompt": "x", "stop": [""]},
        {"prompt": "x", "stop": ["s"] * 17},
        {},
    ],
)
def test_completion_request_rejects(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate(fields)


def test_chat_request_continues_a_final_assistant_message() -> None:
    user = {"role": "user", "content": "q"}
    answer = {"role": "assistant", "content": "partial"}
    assert ChatCompletionRequest(messages=[user, answer]).continues_final_message
    assert not ChatCompletionRequest(messages=[user]).continues_final_message
    explicit = ChatCompletionRequest(messages=[user, answer], continue_final_message=False)
    assert not explicit.continues_final_message
    with pytest.raises(ValidationError):
        ChatCompletionRequest(messages=[])
    with pytest.raises(ValidationError):
        ChatCompletionRequest(messages=[{"role": "tool", "content": "x"}])


def test_usage_adds() -> None:
    total = Usage.of(10, 3, cached_tokens=4) + Usage.of(5, 2)
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (15, 5, 20)
    assert total.cached_tokens == 4


@pytest.mark.parametrize(
    "model",
    [
        Completion(
            id="cmpl-1",
            model="m",
            choices=[{"text": "hi", "finish_reason": "length"}],
            usage=Usage.of(3, 1, 2),
        ),
        CompletionChunk(id="cmpl-1", model="m", choices=[], usage=Usage.of(1, 1)),
        ChatCompletionChunk(
            id="c", model="m", choices=[{"delta": {"role": "assistant", "content": "x"}}]
        ),
        ErrorBody(error={"message": "bad", "type": "invalid_request_error", "param": "prompt"}),
        ChatCompletionRequest(messages=[{"role": "user", "content": "q"}], stop=["a"], seed=3),
    ],
)
def test_wire_round_trip(model: BaseModel) -> None:
    assert type(model).model_validate_json(model.model_dump_json()) == model


def test_unknown_fields_from_other_servers_are_ignored() -> None:
    chunk = CompletionChunk.model_validate_json(
        '{"id": "x", "model": "m", "created": 1, "system_fingerprint": "fp",'
        ' "choices": [{"text": "a", "index": 0, "stop_reason": null}]}'
    )
    assert chunk.choices[0].text == "a"


@pytest.mark.parametrize(
    "event",
    [
        TextEvent(source="slm", text="Hello", n_tokens=1),
        TextEvent(source="llm", text=" world", n_tokens=2),
        CallStarted(call_id="c1", requested=32, granted=16, context_tokens=120),
        CallFinished(
            call_id="c1",
            outcome="ok",
            tokens=16,
            finish_reason="length",
            latency_ms=12.5,
            cost_usd=0.001,
        ),
        FallbackEvent(call_id="c2", reason="cloud unreachable", kept_tokens=3),
        BudgetEvent(call_id="c3", requested=32, granted=0, reason="daily cap reached"),
        DoneEvent(finish_reason="stop", slm_tokens=30, llm_tokens=10, calls=1),
    ],
)
def test_event_round_trip(event: BaseModel) -> None:
    assert parse_event(event.model_dump_json()) == event


def test_done_event_call_ratio() -> None:
    assert DoneEvent(finish_reason="stop", slm_tokens=30, llm_tokens=10, calls=1).call_ratio == 0.25
    assert DoneEvent(finish_reason="stop", slm_tokens=0, llm_tokens=0, calls=0).call_ratio == 0.0


def test_event_with_unknown_type_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_event('{"type": "nope"}')
    with pytest.raises(ValidationError):
        parse_event('{"type": "text", "source": "moon", "text": "x"}')


# Property tests: generated valid models survive JSON; bad values are a ValidationError only.

text = st.text(max_size=12)
stop = st.none() | st.text(min_size=1, max_size=4) | st.lists(st.text(min_size=1), max_size=16)
usage = st.none() | st.builds(Usage.of, *[st.integers(0, 2**31)] * 3)
finish = st.sampled_from([None, "stop", "length"])
sampling = {
    "model": st.none() | text,
    "max_tokens": st.none() | st.integers(1, 2**31),
    "temperature": st.none() | st.floats(0, 2),
    "top_p": st.none() | st.floats(0, 1, exclude_min=True),
    "seed": st.none() | st.integers(0, 2**32 - 1),
    "stop": stop,
    "stream": st.booleans(),
    "stream_options": st.none() | st.builds(StreamOptions, include_usage=st.booleans()),
}
message = st.builds(
    ChatMessage, role=st.sampled_from(["system", "user", "assistant"]), content=text
)
delta = st.builds(
    ChatDelta, role=st.none() | st.just("assistant"), content=st.none() | text,
    relay_source=st.sampled_from([None, "slm", "llm"]),
    relay_call=st.none() | st.builds(RelayCall, call_id=text, requested=st.integers(0, 99),
                                     outcome=st.sampled_from([None, "ok", "fallback"])),
)  # fmt: skip
response = {"id": text, "model": text, "created": st.integers(0, 2**40), "usage": usage}
wire_models = st.one_of(
    st.builds(CompletionRequest, prompt=text | st.lists(text, min_size=1, max_size=1), **sampling),
    st.builds(ChatCompletionRequest, messages=st.lists(message, min_size=1, max_size=4),
              continue_final_message=st.none() | st.booleans(), **sampling),
    st.builds(CompletionChunk, choices=st.lists(st.builds(
        CompletionChoice, index=st.integers(0, 3), text=text, finish_reason=finish), max_size=3),
        **response),
    st.builds(ChatCompletionChunk, choices=st.lists(st.builds(
        ChatChunkChoice, delta=delta, finish_reason=finish), max_size=3), **response),
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(model=wire_models)
def test_generated_wire_models_survive_json(model: BaseModel) -> None:
    assert type(model).model_validate_json(model.model_dump_json()) == model


@settings(max_examples=200, deadline=None)
@given(model=wire_models, value=json_values, raw=st.binary(max_size=40), data=st.data())
def test_any_field_value_validates_or_is_a_validation_error(
    model: BaseModel, value: object, raw: bytes, data: st.DataObject
) -> None:
    fields = model.model_dump()
    fields[data.draw(st.sampled_from(sorted(fields)))] = value
    with suppress(ValidationError):  # anything else fails the test
        type(model).model_validate(fields)
    with suppress(ValidationError):
        type(model).model_validate_json(raw)


REQUESTS = ({"prompt": "p"}, {"messages": [{"role": "user", "content": "q"}]})


@settings(max_examples=200, deadline=None)
@given(
    fields=st.one_of(
        st.fixed_dictionaries({"max_tokens": st.integers(max_value=0)}),
        st.fixed_dictionaries(
            {
                "temperature": st.floats(2, exclude_min=True)
                | st.floats(max_value=0, exclude_max=True)
            }
        ),
        st.fixed_dictionaries({"top_p": st.floats(max_value=0) | st.floats(1, exclude_min=True)}),
        st.fixed_dictionaries({"seed": st.integers(max_value=-1) | st.integers(2**32)}),
        st.fixed_dictionaries({"n": st.integers().filter(lambda n: n != 1)}),
        st.fixed_dictionaries({"stop": st.lists(text, min_size=17) | st.just([""])}),
    ),
    base=st.sampled_from(REQUESTS),
)
def test_out_of_range_values_are_validation_errors(
    fields: dict[str, object], base: dict[str, object]
) -> None:
    kind = CompletionRequest if "prompt" in base else ChatCompletionRequest
    with pytest.raises(ValidationError):
        kind.model_validate(base | fields)

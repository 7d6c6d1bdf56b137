"""Wire models and relay events: validation and JSON round trips."""

from __future__ import annotations

import pytest
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
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionChunk,
    CompletionRequest,
    ErrorBody,
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

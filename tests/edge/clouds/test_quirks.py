"""Learning what a cloud refuses from the 400 it answers with, as each provider words it."""

from __future__ import annotations

import json

import pytest

from edge.clouds.apis import Quirks
from protocol.errors import UpstreamError
from protocol.sse import error_for_status

SENT = {
    "model": "m", "messages": [], "max_tokens": 8, "temperature": 0.7, "stop": ["x"],
    "seed": 1, "stream": True, "stream_options": {"include_usage": True},
    "reasoning_effort": "none", "prompt_cache_key": "k",
}  # fmt: skip


def refusal(body: object, status: int = 400) -> UpstreamError:
    error = error_for_status(status, json.dumps(body).encode(), "https://cloud/v1/x")
    assert isinstance(error, UpstreamError)
    return error


def openai(message: str, param: str | None = None) -> UpstreamError:
    # https://platform.openai.com/docs/guides/error-codes
    return refusal({"error": {"message": message, "type": "invalid_request_error",
                              "param": param, "code": None}})  # fmt: skip


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (openai("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.", "max_tokens"),
         Quirks(rename={"max_tokens": "max_completion_tokens"})),
        (openai("Unsupported value: 'temperature' does not support 0.7 with this model. Only the "
                "default (1) value is supported.", "temperature"),
         Quirks(drop=frozenset({"temperature"}))),
        (openai("Unsupported parameter: 'stop' is not supported with this model.", "stop"),
         Quirks(drop=frozenset({"stop"}))),
        (openai("Unsupported value: 'reasoning_effort' does not support 'none' with this model. "
                "Supported values are: 'low', 'medium', and 'high'.", "reasoning_effort"),
         Quirks(values={"reasoning_effort": "low"})),
        (openai("Unrecognized request argument supplied: reasoning_effort"),
         Quirks(drop=frozenset({"reasoning_effort"}))),
        # https://ai.google.dev/gemini-api/docs/openai: errors come as a list
        (refusal([{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                             'Invalid JSON payload received. Unknown name "prompt_cache_key": '
                             "Cannot find field."}}]),
         Quirks(drop=frozenset({"prompt_cache_key"}))),
        # https://docs.mistral.ai/api/: 422 with FastAPI's detail list
        (refusal({"object": "error", "message": {"detail": [
            {"type": "extra_forbidden", "loc": ["body", "stream_options", "include_usage"],
             "msg": "Extra inputs are not permitted"}]}, "type": "invalid_request_error"}, 422),
         Quirks(drop=frozenset({"stream_options"}))),
        # https://docs.anthropic.com/en/api/errors
        (refusal({"type": "error", "error": {"type": "invalid_request_error",
                                             "message": "seed: Extra inputs are not permitted"}}),
         Quirks(drop=frozenset({"seed"}))),
    ],
)  # fmt: skip
def test_a_refused_field_is_learned(error: UpstreamError, expected: Quirks) -> None:
    assert Quirks().learned_from(error, SENT) == expected


def test_a_bad_value_teaches_nothing() -> None:
    assert Quirks().learned_from(openai("max_tokens is too large: 9999999"), SENT) is None
    assert Quirks().learned_from(openai("messages: at least one message is required"), SENT) is None


def test_what_a_family_needs_is_never_dropped() -> None:
    sent = {**SENT, "continue_final_message": True}
    error = openai("Unrecognized request argument supplied: continue_final_message")
    assert Quirks().learned_from(error, sent, keep=frozenset({"continue_final_message"})) is None


def test_reasoning_effort_steps_up_when_no_values_are_listed() -> None:
    error = openai("Unsupported value: 'reasoning_effort' does not support 'none'.",
                   "reasoning_effort")  # fmt: skip
    stepped = Quirks().learned_from(error, SENT)
    assert stepped == Quirks(values={"reasoning_effort": "minimal"})


def test_a_rename_that_is_refused_goes_back() -> None:
    renamed = Quirks(rename={"max_tokens": "max_completion_tokens"})
    sent = renamed.apply(SENT)
    error = openai("Unrecognized request argument supplied: max_completion_tokens")
    assert renamed.learned_from(error, sent) == Quirks()


def test_quirks_round_trip_through_json() -> None:
    quirks = Quirks(frozenset({"stop"}), {"seed": "random_seed"}, {"reasoning_effort": "low"},
                    frozenset({"echoes-prefix"}))  # fmt: skip
    assert Quirks.from_json(json.loads(json.dumps(quirks.to_json()))) == quirks
    assert quirks.apply(SENT)["random_seed"] == 1
    assert "stop" not in quirks.apply(SENT)

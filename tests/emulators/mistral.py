"""Mistral's Chat Completion API with its assistant ``prefix``, strictly.

Written from the API reference (https://docs.mistral.ai/api/, whose request schema is
``ChatCompletionRequest`` in
https://github.com/mistralai/platform-docs-public/blob/main/openapi.yaml), the prefix
guide (https://docs.mistral.ai/guides/prefix/) and the error glossary
(https://docs.mistral.ai/resources/error-glossary):

* ``POST /v1/chat/completions``, ``GET /v1/models``.
* the request schema forbids additional properties: any other field (``seed``,
  ``stream_options``, ``max_completion_tokens``...) is a 422 whose ``message`` holds
  the validator's ``detail`` list (``extra_forbidden``, ``loc: ["body", NAME]``), as
  is a value out of its range (``temperature`` 0 to 1.5, ``top_p`` 0 to 1, ...).
  Messages take only their role's fields.
* an assistant message may carry ``prefix: true`` and must then be the last one; the
  last message must be a user or tool message, or such a prefix (400
  ``invalid_request_message_order``, code 3230, otherwise).
* with a prefix the reply starts with the prefix itself, then the continuation (the
  guide's example cuts ``len(prefix)`` off the reply).
* ``random_seed`` is taken and changes nothing (the emulated model is deterministic);
  ``n`` is taken and one choice is answered.
* streams: a first chunk with the role, content deltas, and a last chunk with both the
  ``finish_reason`` and the usage (always sent: there is no ``stream_options``), then
  ``data: [DONE]``.
* a wrong key: 401 ``{"message": "Unauthorized", "request_id"}``; ``rate_limited``
  requests: 429 with ``Retry-After``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.emulators.account import ChatCompletionsAccount
from tests.emulators.scripted import (
    NEW_TURN,
    Script,
    cut_at_stop,
    pieces,
    sse,
    text_of,
    token_count,
)

__all__ = ["MistralEmulator"]

FIELDS = (
    "model", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed",
    "metadata", "messages", "response_format", "tools", "tool_choice", "presence_penalty",
    "frequency_penalty", "n", "prediction", "parallel_tool_calls", "prompt_mode",
    "reasoning_effort", "guardrails", "prompt_cache_key", "safe_prompt",
)  # fmt: skip
MESSAGE_FIELDS = {
    "system": ("role", "content"),
    "user": ("role", "content"),
    "assistant": ("role", "content", "tool_calls", "prefix"),
    "tool": ("role", "content", "tool_call_id", "name"),
}
RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0, 1.5), "top_p": (0, 1), "max_tokens": (0, None),
    "random_seed": (0, None), "n": (1, None),
}  # fmt: skip
EFFORTS = ("high", "none")
DEFAULT_MAX_TOKENS = 4096


def error(status: int, message: str | dict[str, Any], *, kind: str = "invalid_request_error",
          code: str | None = None, headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": code}
    return JSONResponse(body, status_code=status, headers=headers)


def order_error(role: str) -> Response:
    message = (f"Expected last role User or Tool (or Assistant with prefix True) for serving "
               f"but got {role}")  # fmt: skip
    return error(400, message, kind="invalid_request_message_order", code="3230")


class MistralEmulator(ChatCompletionsAccount):
    """One emulated account: its key, models, script, and what it was sent (``requests``)."""

    def __init__(self, *, key: str = "mistral-test", script: Script | None = None,
                 models: tuple[str, ...] = ("mistral-small-latest",)) -> None:  # fmt: skip
        super().__init__(key=key, script=script, models=models)
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = self._app(lambda m: {"id": m, "object": "model", "created": 0,
                                   "owned_by": "mistralai",
                                   "capabilities": {"completion_chat": True}},
                        "/v1/models")  # fmt: skip

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            if (refused := self._auth(request)) is not None:
                return refused
            try:
                body = json.loads(await request.body())
            except ValueError as exc:
                return _invalid([{"type": "json_invalid", "loc": ["body", 0],
                                  "msg": "JSON decode error", "input": {},
                                  "ctx": {"error": str(exc)}}])  # fmt: skip
            if not isinstance(body, dict):
                return _invalid([{"type": "model_attributes_type", "loc": ["body"],
                                  "msg": "Input should be a valid dictionary or object to "
                                  "extract fields from", "input": body}])  # fmt: skip
            self.requests.append(body)
            if (wait := self._rate_limit()) is not None:
                return error(429, "Requests rate limit exceeded", kind="rate_limited",
                             code="1300", headers=wait)  # fmt: skip
            return self._refusal(body) or self._answer(body)

        return app

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {self.key}":
            return None
        body = {"message": "Unauthorized", "request_id": uuid.uuid4().hex}
        return JSONResponse(body, status_code=401)

    def _refusal(self, body: dict[str, Any]) -> Response | None:
        if detail := _validation(body):
            return _invalid(detail)
        if body["model"] not in self.models:
            return error(400, f"Invalid model: {body['model']}", kind="invalid_model",
                         code="1500")  # fmt: skip
        messages = body["messages"]
        if not messages:
            return error(400, "Expected at least one message")  # our wording
        for message in messages[:-1]:
            if message.get("prefix"):
                # the wording for a prefix before the last message is not documented; the
                # API's message-order error is the nearest it has
                return order_error(message["role"])
        last = messages[-1]
        if last["role"] not in ("user", "tool") and not (
            last["role"] == "assistant" and last.get("prefix")
        ):
            return order_error(last["role"])
        if last.get("prefix") and not text_of(last):
            # our wording: the docs do not say what an empty prefix gets
            return error(400, "An assistant message with prefix True must not be empty")
        return None

    def _answer(self, body: dict[str, Any]) -> Response:
        messages = body["messages"]
        last = messages[-1]
        prefix = text_of(last) if last.get("prefix") else ""
        text = self.script.after(prefix) if prefix else NEW_TURN
        limit = body.get("max_tokens")
        limit = DEFAULT_MAX_TOKENS if limit is None else limit
        whole = pieces(cut_at_stop(text, body.get("stop")))
        shown = whole[:limit]
        finish = "length" if len(shown) < len(whole) else "stop"  # a stop sequence: "stop"
        # The prefix is echoed before the continuation, and only the continuation's pieces
        # count: against max_tokens and in completion_tokens (the echo is free). The reply
        # is streamed as the pieces of the whole text, so one piece may hold the prefix's
        # end and the continuation's start, as a model's tokens would.
        reply = prefix + "".join(shown)
        prompt = sum(token_count(text_of(m)) for m in messages)
        usage = {"prompt_tokens": prompt, "total_tokens": prompt + len(shown),
                 "completion_tokens": len(shown)}  # fmt: skip
        if not body.get("stream"):
            message = {"role": "assistant", "content": reply, "tool_calls": None}
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return JSONResponse(_chunk(body, "chat.completion", [choice]) | {"usage": usage})
        events = _events(body, pieces(reply), finish, usage)
        return StreamingResponse(events, media_type="text/event-stream")


def _validation(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The validator's errors for ``body``: missing and out-of-range fields, then extras."""
    detail: list[dict[str, Any]] = []
    for name in ("model", "messages"):
        if name not in body:
            detail.append({"type": "missing", "loc": ["body", name], "msg": "Field required",
                           "input": body})  # fmt: skip
    for name, (low, high) in RANGES.items():
        value = body.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if low is not None and value < low:
            detail.append({"type": "greater_than_equal", "loc": ["body", name],
                           "msg": f"Input should be greater than or equal to {low}",
                           "input": value, "ctx": {"ge": low}})  # fmt: skip
        elif high is not None and value > high:
            detail.append({"type": "less_than_equal", "loc": ["body", name],
                           "msg": f"Input should be less than or equal to {high}",
                           "input": value, "ctx": {"le": high}})  # fmt: skip
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS:
        expected = " or ".join(f"'{e}'" for e in EFFORTS)
        detail.append({"type": "enum", "loc": ["body", "reasoning_effort"],
                       "msg": f"Input should be {expected}", "input": effort,
                       "ctx": {"expected": expected}})  # fmt: skip
    messages = body.get("messages")
    if isinstance(messages, list):
        detail += _message_validation(messages)
    elif messages is not None:
        detail.append({"type": "list_type", "loc": ["body", "messages"],
                       "msg": "Input should be a valid list", "input": messages})  # fmt: skip
    for name, value in body.items():
        if name not in FIELDS:
            detail.append({"type": "extra_forbidden", "loc": ["body", name],
                           "msg": "Extra inputs are not permitted", "input": value})  # fmt: skip
    return detail


def _message_validation(messages: list[Any]) -> list[dict[str, Any]]:
    detail: list[dict[str, Any]] = []
    tags = ", ".join(f"'{r}'" for r in sorted(MESSAGE_FIELDS))
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in MESSAGE_FIELDS:
            detail.append({"type": "union_tag_invalid", "loc": ["body", "messages", i],
                           "msg": f"Input tag '{role}' found using 'role' does not match any "
                           f"of the expected tags: {tags}", "input": message})  # fmt: skip
            continue
        for name, value in message.items():
            if name not in MESSAGE_FIELDS[role]:
                where = ["body", "messages", i, role, name]
                detail.append({"type": "extra_forbidden", "loc": where,
                               "msg": "Extra inputs are not permitted",
                               "input": value})  # fmt: skip
        if "prefix" in message and not isinstance(message["prefix"], bool):
            detail.append({"type": "bool_type", "loc": ["body", "messages", i, role, "prefix"],
                           "msg": "Input should be a valid boolean",
                           "input": message["prefix"]})  # fmt: skip
    return detail


def _invalid(detail: list[dict[str, Any]]) -> Response:
    return error(422, {"detail": detail})


def _chunk(body: dict[str, Any], kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "object": kind, "created": int(time.time()),
            "model": body["model"], "choices": choices}  # fmt: skip


async def _events(
    body: dict[str, Any], shown: list[str], finish: str, usage: dict[str, Any]
) -> AsyncIterator[bytes]:
    def delta(content: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": content, "finish_reason": reason}
        return _chunk(body, "chat.completion.chunk", [choice])

    yield sse(delta({"role": "assistant", "content": ""}))
    for piece in shown:
        yield sse(delta({"content": piece}))
    yield sse(delta({"content": ""}, finish) | {"usage": usage})
    yield b"data: [DONE]\n\n"

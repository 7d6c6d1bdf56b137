"""Anthropic's Messages API as it answers, strictly.

Written from the API reference (https://docs.anthropic.com/en/api/messages), its
streaming events (https://docs.anthropic.com/en/api/messages-streaming), its errors
(https://docs.anthropic.com/en/api/errors), the prompt-caching guide
(https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching) and the error
bodies the API returns:

* every error is ``{"type": "error", "error": {"type", "message"}, "request_id"}``
  and every answer has a ``request-id`` header;
* the key goes in ``x-api-key`` (an ``Authorization: Bearer`` key is not read): 401
  ``authentication_error`` "x-api-key header is required" or "invalid x-api-key";
  ``anthropic-version`` must be ``2023-06-01``, 400 when missing or another;
* an undocumented top-level field: 400 "NAME: Extra inputs are not permitted";
  ``max_tokens`` is required; ``temperature`` and ``top_p`` lie in 0..1 and may not
  both be given (the 4.5 models and later); a message with the role ``system`` is
  refused (the system text is the top-level ``system``); text blocks must not be
  empty, nor a message's text all whitespace; consecutive messages of one role are
  merged; at most 4 ``cache_control`` breakpoints; an unknown model: 404
  ``not_found_error`` "model: NAME";
* a final assistant message is a prefill, continued by the model; it may not end in
  whitespace (400). ``prefill=False`` emulates the models that refuse a prefill
  (the 4.6 generation) with their 400;
* streams: ``message_start`` (input usage), ``content_block_start``, a ``ping``,
  ``content_block_delta`` (``text_delta``) per piece, ``content_block_stop``,
  ``message_delta`` (stop reason, cumulative ``output_tokens``), ``message_stop``,
  each as ``event: NAME`` then ``data: JSON``; ``overloaded_after`` ends a stream
  with an ``error`` event (``overloaded_error``) after that many deltas;
* prompt caching: a breakpoint (``cache_control`` on a block, or the top-level
  ``cache_control``, which marks the last block) caches the prefix up to it, once it
  has ``cache_min_tokens`` tokens; a later request reads the longest cached prefix
  that ends on one of its block boundaries at most 20 blocks before a breakpoint
  (``cache_read_input_tokens``), and pays for the rest it caches
  (``cache_creation_input_tokens``). Entries never expire here;
* ``rate_limited`` requests: 429 ``rate_limit_error`` with ``retry-after``.

Messages here are text only; ``tools``, ``tool_choice``, ``thinking`` and
``service_tier`` are taken and not emulated.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from tests.emulators.account import Account
from tests.emulators.openai import CONTINUE_MARKER
from tests.emulators.scripted import NEW_TURN, Script, pieces, token_count

__all__ = ["VERSION", "AnthropicEmulator", "Refused"]

VERSION = "2023-06-01"
DOCUMENTED = frozenset({
    "model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p",
    "top_k", "stream", "metadata", "thinking", "tools", "tool_choice", "service_tier",
    "cache_control",
})  # fmt: skip
MESSAGE_FIELDS = frozenset({"role", "content"})
TEXT_FIELDS = frozenset({"type", "text", "cache_control", "citations"})
MAX_BREAKPOINTS = 4
LOOKBACK = 20
"""Block boundaries before a breakpoint at which a cached prefix is looked for."""
MAX_OUTPUT = 64_000
SYSTEM_ROLE = (
    'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
    'parameter, not "system" as an input message role.'
)
NO_PREFILL = (
    "This model does not support assistant message prefill. The conversation must end with a "
    "user message."
)
RATE_LIMIT = (
    "This request would exceed the rate limit for your organization of 50 requests per "
    "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see "
    "the response headers for current usage. Please reduce the prompt length or the maximum "
    "tokens requested, or try again later."
)
_ID_CHARS = string.ascii_letters + string.digits


class Refused(Exception):
    """A request the API refuses: the status, error type and message it answers."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.headers = headers or {}

    def response(self, request_id: str) -> Response:
        body = {"type": "error", "error": {"type": self.kind, "message": self.message},
                "request_id": request_id}  # fmt: skip
        headers = {"request-id": request_id, **self.headers}
        return JSONResponse(body, status_code=self.status, headers=headers)


class Block(NamedTuple):
    """One block of a prompt, in order: system blocks, then each message's."""

    role: str
    text: str
    marked: bool
    """It carries a ``cache_control`` breakpoint."""


Prefix = tuple[tuple[str, str], ...]
"""A cached prompt prefix: its blocks' roles and texts."""


class AnthropicEmulator(Account):
    """One emulated account: its key, models, script, what it was sent (``requests`` and
    ``headers``, the key left out) and its prompt cache (``cache``: model and prefix)."""

    def __init__(self, *, key: str = "sk-ant-test", script: Script | None = None,
                 models: tuple[str, ...] = ("claude-haiku-4-5",), prefill: bool = True,
                 cache_min_tokens: int = 1024) -> None:  # fmt: skip
        super().__init__(key=key, script=script, models=models)
        self.prefill = prefill
        self.cache_min_tokens = cache_min_tokens
        self.headers: list[dict[str, str]] = []
        self.cache: list[tuple[str, Prefix]] = []
        self.overloaded_after: int | None = None  # streams fail after this many deltas
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.exception_handler(HTTPException)
        async def not_found(request: Request, exc: HTTPException) -> Response:
            kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
            return Refused(exc.status_code, str(exc.detail), kind).response(_new_id("req_"))

        @app.get("/v1/models")
        async def models(request: Request) -> Response:
            request_id = _new_id("req_")
            try:
                self._check_headers(request)
            except Refused as refused:
                return refused.response(request_id)
            data = [{"id": m, "type": "model", "display_name": m,
                     "created_at": "2025-01-01T00:00:00Z"} for m in self.models]  # fmt: skip
            listing = {"data": data, "has_more": False,
                       "first_id": self.models[0] if self.models else None,
                       "last_id": self.models[-1] if self.models else None}  # fmt: skip
            return JSONResponse(listing, headers={"request-id": request_id})

        @app.post("/v1/messages")
        async def messages(request: Request) -> Response:
            request_id = _new_id("req_")
            try:
                self._check_headers(request)
                body = await _json(request)
                self.requests.append(body)
                self.headers.append({k: v for k, v in request.headers.items()
                                     if k != "x-api-key"})  # fmt: skip
                if (wait := self._rate_limit()) is not None:
                    raise Refused(429, RATE_LIMIT, "rate_limit_error", wait)
                blocks = _check_body(body)
                self._check_model(body)
            except Refused as refused:
                return refused.response(request_id)
            return self._answer(body, blocks, request_id)

        return app

    def _check_headers(self, request: Request) -> None:
        key = request.headers.get("x-api-key")
        if key is None:
            raise Refused(401, "x-api-key header is required", "authentication_error")
        if key != self.key:
            raise Refused(401, "invalid x-api-key", "authentication_error")
        version = request.headers.get("anthropic-version")
        if version is None:
            raise Refused(400, "anthropic-version: header is required")
        if version != VERSION:
            raise Refused(400, f'anthropic-version: "{version}" is not a valid version')

    def _check_model(self, body: dict[str, Any]) -> None:
        """What the named model refuses, once the body is valid."""
        model = body["model"]
        if model not in self.models:
            raise Refused(404, f"model: {model}", "not_found_error")
        if "temperature" in body and "top_p" in body:
            raise Refused(400, "`temperature` and `top_p` cannot both be specified for this "
                          "model. Please use only one.")  # fmt: skip
        if body["max_tokens"] > MAX_OUTPUT:
            raise Refused(400, f"max_tokens: {body['max_tokens']} > {MAX_OUTPUT}, which is the "
                          f"maximum allowed number of output tokens for {model}")  # fmt: skip
        if not self.prefill and body["messages"][-1]["role"] == "assistant":
            raise Refused(400, NO_PREFILL)

    def _answer(self, body: dict[str, Any], blocks: list[Block], request_id: str) -> Response:
        text = self._reply(_turns(body["messages"]))
        shown, stop_reason, stop_sequence = _generate(
            text, body["max_tokens"], body.get("stop_sequences") or []
        )
        usage = self._usage(body, blocks)
        message = {
            "id": _new_id("msg_"), "type": "message", "role": "assistant", "content": [],
            "model": body["model"], "stop_reason": None, "stop_sequence": None,
            "usage": usage | {"output_tokens": 1},
        }  # fmt: skip
        headers = {"request-id": request_id}
        if not body.get("stream"):
            done = {"content": [{"type": "text", "text": "".join(shown)}],
                    "stop_reason": stop_reason, "stop_sequence": stop_sequence,
                    "usage": usage | {"output_tokens": len(shown)}}  # fmt: skip
            return JSONResponse(message | done, headers=headers)
        events = _events(message, shown, stop_reason, stop_sequence, self.overloaded_after)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    def _reply(self, turns: list[tuple[str, str]]) -> str:
        """The model's text: a prefill continued, a cut-off answer continued when asked, or a
        new answer."""
        role, text = turns[-1]
        if role == "assistant":
            return self.script.after(text)
        if CONTINUE_MARKER in text and len(turns) >= 2 and turns[-2][0] == "assistant":
            return self.script.asked_to_continue(turns[-2][1])
        return NEW_TURN

    def _usage(self, body: dict[str, Any], blocks: list[Block]) -> dict[str, int]:
        """Input usage, reading and writing the prompt cache (see the module docstring)."""
        model = body["model"]
        tokens = [0]
        for block in blocks:
            tokens.append(tokens[-1] + token_count(block.text))  # tokens[k]: the first k blocks
        marks = [i for i, block in enumerate(blocks) if block.marked]
        if body.get("cache_control") is not None and blocks:
            marks.append(len(blocks) - 1)
        prefix: Prefix = tuple((block.role, block.text) for block in blocks)
        read = written = 0
        for mark in marks:
            for k in range(mark + 1, max(0, mark - LOOKBACK), -1):
                if (model, prefix[:k]) in self.cache:
                    read = max(read, tokens[k])
                    break
        for n, mark in enumerate(sorted(set(marks))):
            entry = (model, prefix[: mark + 1])
            if entry in self.cache or tokens[mark + 1] < self.cache_min_tokens:
                continue
            self.cache.append(entry)
            if n == len(set(marks)) - 1:
                written = tokens[mark + 1] - read
        return {
            "input_tokens": tokens[-1] - read - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:  # the wording is ours
        raise Refused(400, f"There was an error parsing the body of your request: {exc}") from exc
    if not isinstance(body, dict):
        raise Refused(400, "Input should be a valid dictionary or object to extract fields from")
    return body


def _check_body(body: dict[str, Any]) -> list[Block]:
    """The prompt's blocks, or the 400 the API answers for the body."""
    for name in body:
        if name not in DOCUMENTED:
            raise Refused(400, f"{name}: Extra inputs are not permitted")
    for name in ("model", "messages", "max_tokens"):
        if name not in body:
            raise Refused(400, f"{name}: Field required")
    if not isinstance(body["model"], str):
        raise Refused(400, "model: Input should be a valid string")
    _integer(body, "max_tokens", 1)
    if "top_k" in body:
        _integer(body, "top_k", 0)
    for name in ("temperature", "top_p"):
        if name in body:
            _unit(body, name)
    if not isinstance(body.get("stream", False), bool):
        raise Refused(400, "stream: Input should be a valid boolean")
    _check_stops(body.get("stop_sequences", []))
    _check_metadata(body.get("metadata", {}))
    if body.get("service_tier", "auto") not in ("auto", "standard_only"):
        raise Refused(400, "service_tier: Input should be 'auto' or 'standard_only'")
    if body.get("cache_control") is not None:
        _check_cache_control(body["cache_control"], "cache_control")
    tools = body.get("tools", [])
    if not isinstance(tools, list):
        raise Refused(400, "tools: Input should be a valid list")
    blocks = _system_blocks(body.get("system")) + _message_blocks(body["messages"])
    found = sum(block.marked for block in blocks) + (body.get("cache_control") is not None)
    found += sum(isinstance(t, dict) and t.get("cache_control") is not None for t in tools)
    if found > MAX_BREAKPOINTS:
        raise Refused(400, f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be "
                      f"provided. Found {found}.")  # fmt: skip
    return blocks


def _integer(body: dict[str, Any], name: str, least: int) -> None:
    value = body[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refused(400, f"{name}: Input should be a valid integer")
    if value < least:
        raise Refused(400, f"{name}: Input should be greater than or equal to {least}")


def _unit(body: dict[str, Any], name: str) -> None:
    value = body[name]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise Refused(400, f"{name}: Input should be a valid number")
    if value < 0:
        raise Refused(400, f"{name}: Input should be greater than or equal to 0")
    if value > 1:
        raise Refused(400, f"{name}: Input should be less than or equal to 1")


def _check_stops(stops: object) -> None:
    if not isinstance(stops, list):
        raise Refused(400, "stop_sequences: Input should be a valid list")
    for i, stop in enumerate(stops):
        if not isinstance(stop, str):
            raise Refused(400, f"stop_sequences.{i}: Input should be a valid string")
        if not stop.strip():  # the API refuses these; the wording is ours
            raise Refused(400, "stop_sequences: each stop sequence must contain non-whitespace")


def _check_metadata(metadata: object) -> None:
    if not isinstance(metadata, dict):
        raise Refused(400, "metadata: Input should be a valid dictionary")
    for name in metadata:
        if name != "user_id":
            raise Refused(400, f"metadata.{name}: Extra inputs are not permitted")


def _check_cache_control(value: object, where: str) -> None:
    if not isinstance(value, dict):
        raise Refused(400, f"{where}: Input should be a valid dictionary")
    for name in value:
        if name not in ("type", "ttl"):
            raise Refused(400, f"{where}.{name}: Extra inputs are not permitted")
    if value.get("type") != "ephemeral":
        raise Refused(400, f"{where}.type: Input should be 'ephemeral'")
    if value.get("ttl", "5m") not in ("5m", "1h"):
        raise Refused(400, f"{where}.ttl: Input should be '5m' or '1h'")


def _text_block(block: object, where: str, field: str) -> tuple[str, bool]:
    """A text block's text and whether it carries a breakpoint; ``field`` names the
    request field in the API's messages (``messages``, ``system``)."""
    if not isinstance(block, dict):
        raise Refused(400, f"{where}: Input should be a valid dictionary")
    if block.get("type") != "text":  # the API takes images, tools..., not emulated here
        raise Refused(400, f"{where}.type: this emulator takes text blocks only, not "
                      f"{block.get('type')!r}")  # fmt: skip
    for name in block:
        if name not in TEXT_FIELDS:
            raise Refused(400, f"{where}.text.{name}: Extra inputs are not permitted")
    if "text" not in block:
        raise Refused(400, f"{where}.text.text: Field required")
    text = block["text"]
    if not isinstance(text, str):
        raise Refused(400, f"{where}.text.text: Input should be a valid string")
    if not text:
        raise Refused(400, f"{field}: text content blocks must be non-empty")
    marked = block.get("cache_control") is not None
    if marked:
        _check_cache_control(block["cache_control"], f"{where}.text.cache_control")
    return text, marked


def _system_blocks(system: object) -> list[Block]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        texts = [(system, False)]
    elif isinstance(system, list):
        texts = [_text_block(b, f"system.{j}", "system") for j, b in enumerate(system)]
    else:
        raise Refused(400, "system: Input should be a valid string")
    if not "".join(text for text, _ in texts).strip():
        raise Refused(400, "system: text content blocks must contain non-whitespace text")
    return [Block("system", text, marked) for text, marked in texts]


def _message_blocks(messages: object) -> list[Block]:
    if not isinstance(messages, list):
        raise Refused(400, "messages: Input should be a valid list")
    if not messages:
        raise Refused(400, "messages: at least one message is required")
    blocks: list[Block] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise Refused(400, f"{where}: Input should be a valid dictionary")
        for name in message:
            if name not in MESSAGE_FIELDS:
                raise Refused(400, f"{where}.{name}: Extra inputs are not permitted")
        for name in ("role", "content"):
            if name not in message:
                raise Refused(400, f"{where}.{name}: Field required")
        role, content = message["role"], message["content"]
        if role == "system":
            raise Refused(400, SYSTEM_ROLE)
        if role not in ("user", "assistant"):
            raise Refused(400, f"{where}.role: Input should be 'user' or 'assistant'")
        if isinstance(content, str):
            texts = [(content, False)] if content else []
        elif isinstance(content, list):
            texts = [_text_block(b, f"{where}.content.{j}", "messages")
                     for j, b in enumerate(content)]  # fmt: skip
        else:
            raise Refused(400, f"{where}.content: Input should be a valid string")
        joined = "".join(text for text, _ in texts)
        if i == len(messages) - 1 and role == "assistant":
            if joined != joined.rstrip():
                raise Refused(400, "messages: final assistant content cannot end with trailing "
                              "whitespace")  # fmt: skip
        elif not texts:
            raise Refused(400, f"{where}: all messages must have non-empty content except for "
                          "the optional final assistant message")  # fmt: skip
        elif not joined.strip():
            raise Refused(400, "messages: text content blocks must contain non-whitespace text")
        blocks += [Block(role, text, marked) for text, marked in texts]
    return blocks


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The conversation as the model reads it: consecutive messages of one role merged, each
    turn's text its text blocks joined."""
    turns: list[tuple[str, str]] = []
    for message in messages:
        content = message["content"]
        text = content if isinstance(content, str) else "".join(b["text"] for b in content)
        if turns and turns[-1][0] == message["role"]:
            turns[-1] = (message["role"], turns[-1][1] + text)
        else:
            turns.append((message["role"], text))
    return turns


def _generate(text: str, limit: int, stops: list[str]) -> tuple[list[str], str, str | None]:
    """The pieces the model sends of ``text``, its stop reason and the stop sequence met."""
    every = pieces(text)
    shown = every[:limit]
    joined = "".join(shown)
    met = [(joined.find(stop), i, stop) for i, stop in enumerate(stops) if stop in joined]
    if met:
        at, _, stop = min(met)
        cut: list[str] = []
        for piece in shown:
            left = at - sum(map(len, cut))
            if left <= 0:
                break
            cut.append(piece[:left])
        return cut, "stop_sequence", stop
    return shown, "max_tokens" if len(shown) < len(every) else "end_turn", None


async def _events(
    message: dict[str, Any], shown: list[str], stop_reason: str, stop_sequence: str | None,
    overloaded_after: int | None,
) -> AsyncIterator[bytes]:  # fmt: skip
    def event(data: dict[str, Any]) -> bytes:
        return f"event: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    yield event({"type": "message_start", "message": message})
    block = {"type": "text", "text": ""}
    yield event({"type": "content_block_start", "index": 0, "content_block": block})
    yield event({"type": "ping"})
    fails = overloaded_after is not None and overloaded_after <= len(shown)
    for piece in shown[:overloaded_after] if fails else shown:
        delta = {"type": "text_delta", "text": piece}
        yield event({"type": "content_block_delta", "index": 0, "delta": delta})
    if fails:
        yield event({"type": "error",
                     "error": {"type": "overloaded_error", "message": "Overloaded"}})  # fmt: skip
        return
    yield event({"type": "content_block_stop", "index": 0})
    yield event({"type": "message_delta",
                 "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                 "usage": {"output_tokens": len(shown)}})  # fmt: skip
    yield event({"type": "message_stop"})


def _new_id(prefix: str) -> str:
    return prefix + "011C" + "".join(secrets.choice(_ID_CHARS) for _ in range(20))

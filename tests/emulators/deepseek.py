"""DeepSeek's Chat Completions API with its chat prefix completion (beta), strictly.

Written from the API reference (https://api-docs.deepseek.com/api/create-chat-completion),
the guides to chat prefix completion
(https://api-docs.deepseek.com/guides/chat_prefix_completion), to context caching
(https://api-docs.deepseek.com/guides/kv_cache) and to the reasoning model
(https://api-docs.deepseek.com/guides/reasoning_model), the error codes
(https://api-docs.deepseek.com/quick_start/error_codes) and the error bodies the API
returns (``{"error": {"message", "type", "param", "code"}}``):

* ``POST /chat/completions`` (also under ``/v1/``) and ``POST /beta/chat/completions``;
  ``GET /models`` (also ``/v1/models``, ``/beta/models``).
* a top-level field the request schema does not have (``seed``,
  ``max_completion_tokens``, ``reasoning_effort``, ``prompt_cache_key``...): 422
  "Failed to deserialize the JSON body into the target type: unknown field `NAME`,
  expected one of ..." (the API answers that in plain text; here it is an error
  envelope). ``stop``: a string or at most 16 strings; ``stream_options`` only with
  ``stream: true``.
* ``"prefix": true`` on the last message, an assistant message, makes the model write
  on from it, on the beta path only (400 "prefix is only available when using beta
  api ..." elsewhere); the reply is the continuation alone, never the prefix. A final
  assistant message without it is a finished turn (deepseek-chat answers anew;
  deepseek-reasoner refuses it with a 400).
* deepseek-reasoner (or ``thinking: {"type": "enabled"}``) streams its chain of
  thought as ``reasoning_content`` first; those tokens count in ``completion_tokens``
  and ``completion_tokens_details.reasoning_tokens``, and here in ``max_tokens`` too.
  It refuses ``logprobs`` and ``top_logprobs``.
* streams: a first chunk with the role, content deltas, a chunk with the
  ``finish_reason``, then (``stream_options.include_usage``) a chunk with
  ``choices: []`` and the usage, then ``data: [DONE]``.
* context caching is automatic, in units of 64 tokens: what a prompt shares with an
  earlier one from its start is a hit (``prompt_cache_hit_tokens``, also
  ``prompt_tokens_details.cached_tokens``), the rest a miss
  (``prompt_cache_miss_tokens``).
* a wrong key: 401 ``authentication_error``; ``rate_limited`` requests: 429 with
  ``Retry-After``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.emulators.account import ChatCompletionsAccount, chunk_stream
from tests.emulators.scripted import NEW_TURN, Script, cut_at_stop, pieces, text_of, token_count

__all__ = ["REASONING", "DeepSeekEmulator"]

FIELDS = (
    "model", "messages", "frequency_penalty", "presence_penalty", "max_tokens",
    "response_format", "stop", "stream", "stream_options", "temperature", "top_p", "tools",
    "tool_choice", "logprobs", "top_logprobs", "thinking",
)  # fmt: skip
MESSAGE_FIELDS = {
    "system": ("role", "content", "name"),
    "user": ("role", "content", "name"),
    "assistant": ("role", "content", "name", "prefix", "reasoning_content", "tool_calls"),
    "tool": ("role", "content", "tool_call_id"),
}
MODELS = ("deepseek-chat", "deepseek-reasoner")
MAX_STOP = 16
MAX_TOKENS = {"deepseek-chat": 8192, "deepseek-reasoner": 65536}
CACHE_UNIT = 64
REASONING = ("Let", " me", " think.")
"""The chain of thought a reasoning request streams (as ``reasoning_content``) first."""
BETA_ONLY = (
    'prefix is only available when using beta api (set base_url="https://api.deepseek.com/beta")'
)
REASONER_LAST = (
    "The last message of deepseek-reasoner must be a user message, or an assistant message "
    "with prefix mode on (refer to https://api-docs.deepseek.com/guides/chat_prefix_completion)."
)


def error(status: int, message: str, *, kind: str = "invalid_request_error",
          param: str | None = None, code: str | None = "invalid_request_error",
          headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def unparsable(reason: str) -> Response:
    """A body the API's deserializer refuses (422). The API sends it as plain text, and
    its exact words for each case are not documented; only "unknown field" was seen."""
    return error(422, f"Failed to deserialize the JSON body into the target type: {reason}")


class DeepSeekEmulator(ChatCompletionsAccount):
    """One emulated account: its key, models, script, and what it was sent (``requests``)."""

    def __init__(self, *, key: str = "sk-ds-test", script: Script | None = None,
                 models: tuple[str, ...] = MODELS) -> None:  # fmt: skip
        super().__init__(key=key, script=script, models=models)
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = self._app(lambda m: {"id": m, "object": "model", "owned_by": "deepseek"},
                        "/models", "/v1/models", "/beta/models")  # fmt: skip

        def chat_route(beta: bool) -> Callable[[Request], Awaitable[Response]]:
            async def chat(request: Request) -> Response:
                return await self._chat(request, beta=beta)

            return chat

        for path, beta in (("/chat/completions", False), ("/v1/chat/completions", False),
                           ("/beta/chat/completions", True)):  # fmt: skip
            app.add_api_route(path, chat_route(beta), methods=["POST"])
        return app

    async def _chat(self, request: Request, *, beta: bool) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            # our wording: the API's words for a body that is not JSON are not documented
            return error(400, f"Failed to parse the request body as JSON: {exc}")
        if not isinstance(body, dict):
            return unparsable("invalid type: expected struct ChatCompletionRequest")
        self.requests.append(body)
        if (wait := self._rate_limit()) is not None:
            return error(429, "Rate Limit Reached", kind="rate_limit_error", code=None,
                         headers=wait)  # fmt: skip
        return self._refusal(body, beta=beta) or self._answer(body)

    def _auth(self, request: Request) -> Response | None:
        given = request.headers.get("authorization", "")
        if given == f"Bearer {self.key}":
            return None
        shown = given.removeprefix("Bearer ")[-4:]
        return error(401, f"Authentication Fails, Your api key: ****{shown} is invalid",
                     kind="authentication_error")  # fmt: skip

    def _refusal(self, body: dict[str, Any], *, beta: bool) -> Response | None:
        for name in body:
            if name not in FIELDS:
                expected = ", ".join(f"`{f}`" for f in FIELDS)
                return unparsable(f"unknown field `{name}`, expected one of {expected}")
        for name in ("model", "messages"):
            if name not in body:
                return unparsable(f"missing field `{name}`")
        if body["model"] not in self.models:
            return error(400, "Model Not Exist")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            return error(400, "Empty input messages")  # our wording
        if (refused := _message_refusal(messages, beta)) is not None:
            return refused
        last = messages[-1]
        if (body["model"] == "deepseek-reasoner" and last["role"] != "user"
                and not (last["role"] == "assistant" and last.get("prefix"))):  # fmt: skip
            return error(400, REASONER_LAST)
        return _parameter_refusal(body)

    def _answer(self, body: dict[str, Any]) -> Response:
        messages = body["messages"]
        last = messages[-1]
        if last["role"] == "assistant" and last.get("prefix"):
            text = self.script.after(text_of(last))  # the continuation alone
        else:
            text = NEW_TURN  # a final plain assistant message is a finished turn
        reasons = body["model"] == "deepseek-reasoner" or (
            (body.get("thinking") or {}).get("type") == "enabled"
        )
        limit = body.get("max_tokens") or 4096
        thought = list(REASONING[:limit]) if reasons else []
        whole = pieces(cut_at_stop(text, body.get("stop")))
        shown = whole[: max(0, limit - len(thought))]
        finish = "length" if len(shown) < len(whole) else "stop"  # a stop sequence: "stop"
        usage = self._usage(messages, len(shown) + len(thought), len(thought))
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(shown)}
            if reasons:
                message["reasoning_content"] = "".join(thought)
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            return JSONResponse(_chunk(body, "chat.completion", [choice]) | {"usage": usage})
        include_usage = (body.get("stream_options") or {}).get("include_usage", False)
        deltas = [{"content": None, "reasoning_content": piece} for piece in thought]
        deltas += [{"content": piece} for piece in shown]
        events = chunk_stream(lambda choices: _chunk(body, "chat.completion.chunk", choices),
                              deltas, {"content": ""}, finish,
                              usage if include_usage else None)  # fmt: skip
        return StreamingResponse(events, media_type="text/event-stream")

    def _usage(self, messages: list[dict[str, Any]], completion: int,
               reasoning: int) -> dict[str, Any]:  # fmt: skip
        _, shared = self._shared_words(f"{m['role']}: {text_of(m)}" for m in messages)
        prompt = sum(token_count(text_of(m)) for m in messages)
        hit = min(shared, prompt) // CACHE_UNIT * CACHE_UNIT
        return {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_cache_hit_tokens": hit, "prompt_cache_miss_tokens": prompt - hit,
            "prompt_tokens_details": {"cached_tokens": hit},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }  # fmt: skip


def _message_refusal(messages: list[Any], beta: bool) -> Response | None:
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_FIELDS:
            role = message.get("role") if isinstance(message, dict) else message
            return unparsable(f"messages[{i}]: unknown variant `{role}`, expected one of "
                              "`system`, `user`, `assistant`, `tool`")  # fmt: skip
        allowed = MESSAGE_FIELDS[message["role"]]
        for name in message:
            if name not in allowed:
                return unparsable(f"messages[{i}]: unknown field `{name}`")
        if message.get("prefix"):
            if not beta:
                return error(400, BETA_ONLY)
            if i != len(messages) - 1:
                # our wording: the guide only says the prefix is the last message
                return error(400, "Only the last message may be an assistant message with "
                             "prefix mode on")  # fmt: skip
    return None


def _parameter_refusal(body: dict[str, Any]) -> Response | None:
    model = body["model"]
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > MAX_STOP:
        # our wording: the reference gives the limit, not the error
        return error(400, f"Invalid stop: at most {MAX_STOP} stop sequences are allowed, "
                     f"got {len(stop)}", param="stop")  # fmt: skip
    if stop is not None and not isinstance(stop, (str, list)):
        return unparsable("stop: invalid type, expected a string or a sequence of strings")
    tokens = body.get("max_tokens")
    most = MAX_TOKENS.get(model, MAX_TOKENS["deepseek-chat"])
    if tokens is not None and not (isinstance(tokens, int) and 1 <= tokens <= most):
        return error(400, f"Invalid max_tokens value, the valid range of max_tokens is "
                     f"[1, {most}]")  # fmt: skip
    if "stream_options" in body and not body.get("stream"):
        # our wording: the reference says stream_options is only set when stream is true
        return error(400, "stream_options should be set along with stream = true",
                     param="stream_options")  # fmt: skip
    if model == "deepseek-reasoner":
        for name in ("logprobs", "top_logprobs"):
            if name in body:
                # our wording: the reasoning guide says these "will trigger an error"
                return error(400, f"deepseek-reasoner does not support the parameter `{name}`",
                             param=name)  # fmt: skip
    return None


def _chunk(body: dict[str, Any], kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "object": kind, "created": int(time.time()),
            "model": body["model"], "system_fingerprint": "fp_x", "choices": choices}  # fmt: skip

"""OpenAI's Chat Completions API as it answers a chat-only model, strictly.

Written from the API reference (https://platform.openai.com/docs/api-reference/chat/create,
the request schema in https://github.com/openai/openai-openapi) and the error
bodies the API returns:

* ``POST /v1/completions``: 404 "This is a chat model and not supported in the
  v1/completions endpoint. Did you mean to use v1/chat/completions?"
* an undocumented top-level field: 400 "Unrecognized request argument
  supplied: NAME" (``continue_final_message``, ``add_generation_prompt``);
  an undocumented message field: 400 "Unknown parameter: 'messages[i].NAME'."
* ``stop``: at most 4 strings (400 beyond).
* a reasoning model (``o3-mini``, ``gpt-5*``): ``max_tokens`` refused (use
  ``max_completion_tokens``), any ``temperature`` but 1 refused, ``stop``
  refused, ``reasoning_effort`` only ``low``/``medium``/``high``; hidden
  reasoning tokens count in ``completion_tokens`` and in the token limit.
  A non-reasoning model refuses ``reasoning_effort`` as an unrecognized argument.
* a final assistant message is a finished turn: the model answers anew.
* streams: a first chunk with the role, content deltas, a chunk with the
  ``finish_reason``, then (``stream_options.include_usage``) a chunk with
  ``choices: []`` and the usage, then ``data: [DONE]``.
* prompt caching (https://platform.openai.com/docs/guides/prompt-caching): a
  prompt of 1024 tokens or more that shares a prefix with an earlier one reads
  it from the cache in 128-token steps (``prompt_tokens_details.cached_tokens``).
* a wrong key: 401 ``invalid_api_key``; ``rate_limited`` requests: 429 with
  ``Retry-After``; while ``failing`` is set, every request gets that status (500, 503).
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.emulators.account import ChatCompletionsAccount, chunk_stream
from tests.emulators.scripted import NEW_TURN, Script, pieces, token_count

__all__ = ["CONTINUE_MARKER", "OpenAIEmulator"]

DOCUMENTED = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
    "seed", "stream", "stream_options", "reasoning_effort", "prompt_cache_key", "user", "n",
    "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "store", "metadata",
    "service_tier", "verbosity", "safety_identifier", "prediction", "modalities", "audio",
    "web_search_options", "prompt_cache_retention",
})  # fmt: skip
MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "refusal"})
CONTINUE_MARKER = "cut off"
"""Words of the edge's instruction to continue a partial answer, which the model obeys."""
REASONING_TOKENS = 2


def error(
    status: int, message: str, *, param: str | None = None, code: str | None = None,
    kind: str = "invalid_request_error", headers: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    """OpenAI's error envelope."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAIEmulator(ChatCompletionsAccount):
    """One emulated account: its key, models, script, and what it was sent (``requests``)."""

    def __init__(self, *, key: str = "sk-test", script: Script | None = None,
                 models: tuple[str, ...] = ("gpt-4o-mini", "o3-mini")) -> None:  # fmt: skip
        super().__init__(key=key, script=script, models=models)
        self.failing: int | None = None  # every request gets this status (500, 503)
        self.reasoning_tokens = REASONING_TOKENS  # what a reasoning model thinks before it writes
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = self._app(lambda m: {"id": m, "object": "model", "owned_by": "system"}, "/v1/models")

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            if (refused := self._auth(request)) is not None:
                return refused
            message = ("This is a chat model and not supported in the v1/completions endpoint. "
                       "Did you mean to use v1/chat/completions?")  # fmt: skip
            return error(404, message, param="model")

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            if (refused := self._auth(request)) is not None:
                return refused
            body = json.loads(await request.body())
            self.requests.append(body)
            if (wait := self._rate_limit()) is not None:
                return error(429, "Rate limit reached for requests. Please try again in 1s.",
                             kind="requests", code="rate_limit_exceeded", headers=wait)  # fmt: skip
            if self.failing is not None:
                message = "The server had an error while processing your request. Sorry about that!"
                return error(self.failing, message, kind="server_error")
            refused = self._refusal(body)
            return refused or self._answer(body)

        return app

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {self.key}":
            return None
        message = ("Incorrect API key provided. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")  # fmt: skip
        return error(401, message, code="invalid_api_key")

    def _refusal(self, body: dict[str, Any]) -> Response | None:
        for name in body:
            if name not in DOCUMENTED:
                return error(400, f"Unrecognized request argument supplied: {name}")
        for i, message in enumerate(body.get("messages", [])):
            for name in message:
                if name not in MESSAGE_FIELDS:
                    where = f"messages[{i}].{name}"
                    return error(400, f"Unknown parameter: '{where}'.", param=where,
                                 code="unknown_parameter")  # fmt: skip
        if body.get("model") not in self.models:
            return error(404, f"The model `{body.get('model')}` does not exist or you do not "
                         "have access to it.", param="model", code="model_not_found")  # fmt: skip
        stop = body.get("stop")
        if isinstance(stop, list) and len(stop) > 4:
            return error(400, "Invalid 'stop': array too long. Expected an array with maximum "
                         f"length 4, but got an array with length {len(stop)} instead.",
                         param="stop", code="array_above_max_length")  # fmt: skip
        return self._reasoning_refusal(body) if _reasons(body["model"]) else (
            error(400, "Unrecognized request argument supplied: reasoning_effort")
            if "reasoning_effort" in body else None
        )  # fmt: skip

    def _reasoning_refusal(self, body: dict[str, Any]) -> Response | None:
        if "max_tokens" in body:
            return error(400, "Unsupported parameter: 'max_tokens' is not supported with this "
                         "model. Use 'max_completion_tokens' instead.", param="max_tokens",
                         code="unsupported_parameter")  # fmt: skip
        if body.get("temperature", 1) != 1:
            message = (f"Unsupported value: 'temperature' does not support {body['temperature']} "
                       "with this model. Only the default (1) value is supported.")  # fmt: skip
            return error(400, message, param="temperature", code="unsupported_value")
        if "stop" in body:
            return error(400, "Unsupported parameter: 'stop' is not supported with this model.",
                         param="stop", code="unsupported_parameter")  # fmt: skip
        effort = body.get("reasoning_effort", "medium")
        if effort not in ("low", "medium", "high"):
            message = (
                f"Unsupported value: 'reasoning_effort' does not support '{effort}' with this "
                "model. Supported values are: 'low', 'medium', and 'high'."
            )
            return error(400, message, param="reasoning_effort", code="unsupported_value")
        return None

    def _answer(self, body: dict[str, Any]) -> Response:
        messages = body["messages"]
        last = messages[-1]
        asked = last["role"] == "user" and CONTINUE_MARKER in last["content"]
        if asked and len(messages) >= 2 and messages[-2]["role"] == "assistant":
            text = self.script.asked_to_continue(messages[-2]["content"])
        else:
            text = NEW_TURN  # a final assistant message is a finished turn, never continued
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 4096
        hidden = min(limit, self.reasoning_tokens) if _reasons(body["model"]) else 0
        shown = pieces(text)[: max(0, limit - hidden)]
        finish = "length" if len(shown) < len(pieces(text)) else "stop"
        usage = self._usage(messages, len(shown) + hidden, hidden)
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": "".join(shown)},
                      "finish_reason": finish}  # fmt: skip
            return JSONResponse(_chunk(body, "chat.completion", [choice]) | {"usage": usage})
        include_usage = (body.get("stream_options") or {}).get("include_usage", False)
        events = chunk_stream(lambda choices: _chunk(body, "chat.completion.chunk", choices),
                              ({"content": piece} for piece in shown), {}, finish,
                              usage if include_usage else None)  # fmt: skip
        return StreamingResponse(events, media_type="text/event-stream")

    def _usage(self, messages: list[dict[str, Any]], completion: int, hidden: int) -> dict:
        words, shared = self._shared_words(f"{m['role']}: {m['content']}" for m in messages)
        cached = shared // 128 * 128 if words >= 1024 and shared >= 1024 else 0
        prompt = sum(token_count(f"{m['role']}: {m['content']}") for m in messages)
        return {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
            "completion_tokens_details": {"reasoning_tokens": hidden},
        }  # fmt: skip


def _reasons(model: str) -> bool:
    return model.startswith(("o1", "o3", "o4", "gpt-5"))


def _chunk(body: dict[str, Any], kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "chatcmpl-emulated", "object": kind, "created": int(time.time()),
            "model": body["model"], "choices": choices}  # fmt: skip

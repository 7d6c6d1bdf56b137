"""``chat-prefix``: the partial answer as a last assistant message marked ``"prefix": true``
(DeepSeek on its beta base URL, Mistral).

The model writes on from the prefix. DeepSeek returns only the continuation;
Mistral returns the prefix first, which the seam drops. With no partial answer
yet, the conversation is sent as it is.
"""

from __future__ import annotations

from typing import Any

from edge.clouds.apis.base import ApiCall, CloudApi, Conversation, OpenAIStyle, Target
from edge.clouds.client import CloudRequest
from edge.clouds.seam import Seam
from edge.openai_compat import endpoint
from protocol.sse import CompletionStream
from protocol.wire import MAX_STOP_SEQUENCES

__all__ = ["ChatPrefix"]


class ChatPrefix(OpenAIStyle):
    name: CloudApi = "chat-prefix"

    def call(self, request: CloudRequest, target: Target) -> ApiCall:
        talk = Conversation.of(request.messages)
        messages = talk.openai_messages()
        if talk.partial:
            messages.append({"role": "assistant", "content": talk.partial, "prefix": True})
        body: dict[str, Any] = {
            "model": target.model, "messages": messages, "max_tokens": request.max_tokens,
            "temperature": target.temperature_for(request), "stream": True,
            "stream_options": {"include_usage": True},
        }  # fmt: skip
        if stop := target.stops_for(request, MAX_STOP_SEQUENCES):
            body["stop"] = stop
        if request.seed is not None:
            body["seed"] = request.seed
        return ApiCall(
            url=endpoint(target.base_url, "chat"),
            body=target.quirks.apply(body),
            headers=self.headers(target),
            new_tally=lambda: CompletionStream("chat"),
            seam=lambda: Seam.after_prefix(talk.partial),
        )

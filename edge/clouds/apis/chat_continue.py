"""``chat-continue``: ``/chat/completions`` with ``continue_final_message`` and
``add_generation_prompt: false`` (vLLM, SGLang, relay-cloud).

The server renders the conversation with its own template and leaves the final
assistant message open, so the reply continues it character for character.
"""

from __future__ import annotations

from edge.clouds.apis.base import ApiCall, CloudApi, OpenAIStyle, Target
from edge.core.cloud import CloudRequest
from edge.openai_compat import request_body
from protocol.wire import MAX_STOP_SEQUENCES

__all__ = ["ChatContinue"]


class ChatContinue(OpenAIStyle):
    name: CloudApi = "chat-continue"
    needs = frozenset({"continue_final_message", "add_generation_prompt"})

    def call(self, request: CloudRequest, target: Target) -> ApiCall:
        body = request_body(
            "chat", model=target.model, messages=request.messages,
            max_tokens=request.max_tokens, temperature=target.temperature_for(request),
            seed=request.seed, stop=target.stops_for(request, MAX_STOP_SEQUENCES),
            continue_final=True,
        )  # fmt: skip
        return self.openai_call(target, "chat", body)

"""``chat-prefix``: the partial answer as a last assistant message marked ``"prefix": true``
(DeepSeek on its beta base URL, Mistral).

The model writes on from the prefix. DeepSeek returns only the continuation;
Mistral returns the prefix first (the ``echoes-prefix`` quirk of its row in
:mod:`edge.clouds.providers`, or learned from the probe's reply), which the seam
then drops. A cloud not known to echo is still watched for it once the partial
answer is long enough (:data:`ECHO_SURE_CHARS`) that no continuation could start
with all of it. With no partial answer yet, the conversation is sent as it is.
"""

from __future__ import annotations

from edge.clouds.apis.base import (
    PROBE_ANSWER,
    ApiCall,
    CloudApi,
    Conversation,
    OpenAIStyle,
    Target,
    chat_body,
)
from edge.clouds.apis.quirks import Quirks
from edge.clouds.seam import Seam
from edge.core.cloud import CloudRequest
from protocol.wire import MAX_STOP_SEQUENCES

__all__ = ["ECHOES_PREFIX", "ChatPrefix"]

ECHOES_PREFIX = "echoes-prefix"
ECHO_SURE_CHARS = 24


class ChatPrefix(OpenAIStyle):
    name: CloudApi = "chat-prefix"

    def call(self, request: CloudRequest, target: Target) -> ApiCall:
        talk = Conversation.of(request.messages)
        echoes = ECHOES_PREFIX in target.quirks.flags or len(talk.partial) >= ECHO_SURE_CHARS
        messages = talk.openai_messages()
        if talk.partial:
            messages.append({"role": "assistant", "content": talk.partial, "prefix": True})
        body = chat_body(request, target, messages, max_stops=MAX_STOP_SEQUENCES)
        seam = (lambda: Seam.after_prefix(talk.partial)) if echoes else Seam
        return self.openai_call(target, "chat", body, seam)

    def read_probe(self, reply: str, quirks: Quirks) -> tuple[str, Quirks]:
        """A reply that starts with the whole prefix echoes it: read what follows."""
        if reply.startswith(PROBE_ANSWER):
            return reply[len(PROBE_ANSWER) :], quirks.with_flag(ECHOES_PREFIX)
        return reply, quirks

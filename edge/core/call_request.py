"""The cloud request of one call, built from the answer's context.

The cloud gets the SLM's prompt and the answer so far with every command
replaced (:func:`protocol.calls.cloud_view`), both as raw prompt text and as
chat messages ending with the partial answer; at most the tokens granted; the
template's turn markers as ``stop``; and a seed derived from the answer's.
"""

from __future__ import annotations

from edge.core.cloud import CloudRequest
from edge.core.prompt import RelayPrompt
from edge.core.record import AnswerRecord
from protocol.calls import cloud_view
from protocol.wire import ChatMessage

__all__ = ["cloud_request"]


def cloud_request(
    prompt: RelayPrompt, record: AnswerRecord, granted: int, seed: int | None
) -> CloudRequest:
    """The request for the answer's next call, which may bring ``granted`` tokens."""
    answer = cloud_view(record.text)
    index = len(record.calls) + 1
    earlier = prompt.cloud_messages
    if prompt.continues:  # the answer goes on from the final assistant message
        earlier, answer_message = earlier[:-1], earlier[-1].content + answer
    else:
        answer_message = answer
    return CloudRequest(
        call_id=f"call-{record.answer_id}-{index}",
        answer_id=record.answer_id,
        prompt=prompt.cloud_text + answer,
        messages=(*earlier, ChatMessage(role="assistant", content=answer_message)),
        max_tokens=granted,
        context_tokens=len(prompt.tokens) + len(record.tokens),
        seed=None if seed is None else (seed + index) % 2**32,
        stop=prompt.stops,
    )

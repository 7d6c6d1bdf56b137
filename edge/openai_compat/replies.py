"""Chat replies as both servers send them: whole as JSON, or chunk by chunk as server-sent events.

:func:`chat_reply` is a finished answer; :class:`ChatChunks` makes the chunks of a streamed
one (each with the answer's id and model) and :func:`stream_reply` sends any chunks as an
event stream ending in ``[DONE]``; an error after the stream began is sent as an error event
(the status line has gone already). Needs the ``cloud`` extra (FastAPI).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from edge.openai_compat.logs import current_request_id
from edge.openai_compat.server import event_stream
from protocol.errors import RelayError
from protocol.wire import (
    SSE_DONE,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    ChatMessage,
    ErrorBody,
    FinishReason,
    Usage,
    encode_sse,
)

__all__ = ["ChatChunks", "chat_reply", "json_reply", "stream_reply"]

log = logging.getLogger(__name__)


def json_reply(reply: BaseModel) -> JSONResponse:
    """A finished answer as JSON, unset fields left out."""
    return JSONResponse(reply.model_dump(exclude_none=True))


def chat_reply(
    rid: str, model: str, text: str, finish_reason: FinishReason | None, usage: Usage | None
) -> JSONResponse:
    """A finished chat answer: one assistant message."""
    message = ChatMessage(role="assistant", content=text)
    choice = ChatChoice(message=message, finish_reason=finish_reason)
    return json_reply(ChatCompletion(id=rid, model=model, choices=[choice], usage=usage))


class ChatChunks:
    """The chunks of one streamed chat answer."""

    def __init__(self, rid: str, model: str) -> None:
        self.rid, self.model = rid, model

    def delta(self, delta: ChatDelta, finish_reason: FinishReason | None = None) -> BaseModel:
        """A chunk with ``delta`` (and, on the last, why the answer ended)."""
        choice = ChatChunkChoice(delta=delta, finish_reason=finish_reason)
        return ChatCompletionChunk(id=self.rid, model=self.model, choices=[choice])

    def usage(self, usage: Usage) -> BaseModel:
        """The chunk after the last, when the request asked for usage: no choices."""
        return ChatCompletionChunk(id=self.rid, model=self.model, choices=[], usage=usage)


def stream_reply(chunks: AsyncIterator[BaseModel]) -> StreamingResponse:
    """``chunks`` as server-sent events, then ``[DONE]``."""
    return event_stream(_events(chunks))


async def _events(chunks: AsyncIterator[BaseModel]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield encode_sse(chunk)
    except RelayError as exc:
        log.warning("stream failed: %s", exc.message)
        yield encode_sse(ErrorBody.of(exc, current_request_id()))
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE

"""What an API family is: how one relay call is said to a cloud, and how its reply is read.

A relay call is always "continue this partial answer for at most N tokens".
Each family (one module beside this one) turns a :class:`CloudRequest` into an
:class:`ApiCall` for one :class:`Target`: the URL, headers and body of one
streamed POST, the :class:`Tally` that reads its reply, and the :class:`Seam`
that joins the reply to the answer. :class:`edge.clouds.http.HttpCloud` sends
it; the relay loop never sees which family spoke.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from edge.clouds.apis.quirks import Quirks
from edge.clouds.seam import Seam
from edge.clouds.transport import Tally
from edge.core.cloud import CloudRequest
from edge.openai_compat import endpoint
from protocol.errors import UpstreamError
from protocol.sse import CompletionStream, StreamMode
from protocol.wire import ChatMessage

__all__ = [
    "API_ORDER",
    "CONTINUE_INSTRUCTION",
    "PROBE_ANSWER",
    "PROBE_QUESTION",
    "ApiCall",
    "ApiFamily",
    "CloudApi",
    "Conversation",
    "OpenAIStyle",
    "Target",
    "bearer",
    "chat_body",
]

CloudApi = Literal["completions", "chat-continue", "chat-prefix", "anthropic", "chat"]
API_ORDER: tuple[CloudApi, ...] = get_args(CloudApi)
"""The families in the order ``auto`` tries them: the most faithful continuation first."""

CONTINUE_INSTRUCTION = (
    "Your previous message was cut off. Continue it from exactly where it stops, as if you "
    "had never been interrupted: do not repeat any of it, add no preamble or comment, and if "
    "it stops inside a word, finish that word."
)
"""What a chat API without prefill is told after the partial answer (``chat`` family)."""

PROBE_QUESTION = "Count from 1 to 20, separated by commas."
PROBE_ANSWER = "1, 2, 3, 4, 5, 6, 7, 8, 9, 1"
"""The known partial answer of :mod:`edge.clouds.probe`: cut inside a number."""


@dataclass(frozen=True)
class Target:
    """One cloud as a family addresses it: where, which model, with what."""

    base_url: str
    model: str
    api_key: str | None = None
    temperature: float = 0.7
    stop: tuple[str, ...] = ()
    quirks: Quirks = field(default_factory=Quirks)

    def temperature_for(self, request: CloudRequest) -> float:
        return self.temperature if request.temperature is None else request.temperature

    def stops_for(self, request: CloudRequest, limit: int) -> list[str]:
        """The cloud's own stop strings, then the SLM template's markers, at most ``limit``."""
        return list(dict.fromkeys([*self.stop, *request.stop]))[:limit]


@dataclass(frozen=True)
class ApiCall:
    """One streamed POST: where, what, how its reply is read and joined to the answer."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    new_tally: Callable[[], Tally]
    seam: Callable[[], Seam] = Seam


class ApiFamily(Protocol):
    """One way of asking a cloud to continue a partial answer.

    ``needs`` names the body fields the family cannot do without: a cloud that
    refuses one of them does not speak this family.
    """

    name: CloudApi
    needs: frozenset[str]

    def call(self, request: CloudRequest, target: Target) -> ApiCall:
        """The request for one relay call."""
        ...

    def models_url(self, base_url: str) -> str:
        """Where the cloud lists its models (``{"data": [{"id": ...}]}``)."""
        ...

    def headers(self, target: Target) -> dict[str, str]:
        """Authentication and version headers."""
        ...

    def adapt(self, error: UpstreamError, target: Target) -> Quirks | None:
        """Quirks of this family that avoid ``error`` (beyond a refused field), if any."""
        ...

    def read_probe(self, reply: str, quirks: Quirks) -> tuple[str, Quirks]:
        """The probe's reply as the family reads it, and what it teaches (an echoed prefix)."""
        ...


@dataclass(frozen=True)
class Conversation:
    """A request's messages as a chat API needs them apart: system text, turns, partial answer."""

    system: str
    turns: tuple[ChatMessage, ...]
    partial: str

    @classmethod
    def of(cls, messages: Sequence[ChatMessage]) -> Conversation:
        """The last message is the partial answer (an assistant message, maybe empty)."""
        *earlier, last = messages or [ChatMessage(role="assistant", content="")]
        system = "\n\n".join(m.content for m in earlier if m.role == "system")
        turns = tuple(m for m in earlier if m.role != "system")
        partial = last.content if last.role == "assistant" else ""
        if last.role != "assistant":
            turns = (*turns, last)
        return cls(system, turns, partial)

    def openai_messages(self, *, system_role: bool = True) -> list[dict[str, Any]]:
        """System and turns as OpenAI chat messages (the partial answer not included)."""
        head = [{"role": "system", "content": self.system}] if self.system and system_role else []
        return head + [{"role": m.role, "content": m.content} for m in self.turns]


def chat_body(
    request: CloudRequest, target: Target, messages: list[dict[str, Any]], *, max_stops: int,
    **more: Any,
) -> dict[str, Any]:  # fmt: skip
    """A streamed ``/chat/completions`` body of OpenAI's documented fields (and ``more``)."""
    body: dict[str, Any] = {
        "model": target.model, "messages": messages, "max_tokens": request.max_tokens,
        "temperature": target.temperature_for(request), "stream": True,
        "stream_options": {"include_usage": True}, **more,
    }  # fmt: skip
    if stop := target.stops_for(request, max_stops):
        body["stop"] = stop
    if request.seed is not None:
        body["seed"] = request.seed
    return body


def bearer(target: Target) -> dict[str, str]:
    """``Authorization: Bearer`` with the cloud's key, when it has one."""
    return {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}


class OpenAIStyle:
    """What the families spoken on OpenAI's routes share: a bearer key, ``{base}/models``."""

    needs: frozenset[str] = frozenset()

    def models_url(self, base_url: str) -> str:
        return base_url.rstrip("/") + "/models"

    def headers(self, target: Target) -> dict[str, str]:
        return bearer(target)

    def openai_call(
        self,
        target: Target,
        mode: StreamMode,
        body: dict[str, Any],
        seam: Callable[[], Seam] = Seam,
    ) -> ApiCall:
        """``body`` (less the fields ``target`` refuses) streamed to the completions route of
        ``mode``, the reply read as an OpenAI stream and joined by ``seam``."""
        return ApiCall(
            url=endpoint(target.base_url, mode),
            body=target.quirks.apply(body),
            headers=self.headers(target),
            new_tally=lambda: CompletionStream(mode),
            seam=seam,
        )

    def adapt(self, error: UpstreamError, target: Target) -> Quirks | None:
        return None

    def read_probe(self, reply: str, quirks: Quirks) -> tuple[str, Quirks]:
        return reply, quirks

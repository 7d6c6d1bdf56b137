"""Does a cloud continue a partial answer? One tiny, known continuation tells.

The probe asks to count from 1 to 20 and hands over ``1, 2, …, 9, 1``: an
answer cut inside a number. A cloud that continues it writes ``0, 11, …``; one
that starts a new turn restarts the count or says something else; a chat model
may write the cut number again (``10, 11``). ``auto`` tries the families in the
order of :data:`edge.clouds.apis.API_ORDER` and takes the first whose reply
continues (the ``chat`` family may also repeat: it trims repeated words);
``relay cloud check`` reports the verdict of the family in use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from edge.clouds.apis import API_ORDER, CloudApi, Quirks
from edge.clouds.apis.base import PROBE_ANSWER, PROBE_QUESTION
from edge.core.cloud import CloudRequest
from protocol.errors import CloudError, CloudUnavailable, UpstreamError
from protocol.wire import ChatMessage

__all__ = [
    "PROBE_ANSWER",
    "PROBE_QUESTION",
    "PROBE_THINKING_TOKENS",
    "ProbeResult",
    "Verdict",
    "find_api",
    "probe_request",
    "verdict",
]

PROBE_TOKENS = 8
PROBE_THINKING_TOKENS = 256
"""Room for a reasoning model's hidden thinking, when it spent the probe's tokens on it."""

Verdict = Literal["continued", "repeated", "restarted", "answered anew", "empty"]
_USABLE: dict[CloudApi, tuple[Verdict, ...]] = {"chat": ("continued", "repeated")}


def probe_request(max_tokens: int = PROBE_TOKENS) -> CloudRequest:
    """The known partial answer, for every family (ChatML for a raw completion)."""
    messages = (ChatMessage(role="user", content=PROBE_QUESTION),
                ChatMessage(role="assistant", content=PROBE_ANSWER))  # fmt: skip
    prompt = f"<|im_start|>user\n{PROBE_QUESTION}<|im_end|>\n<|im_start|>assistant\n{PROBE_ANSWER}"
    return CloudRequest(
        call_id="probe", answer_id="probe", prompt=prompt, messages=messages,
        max_tokens=max_tokens, seed=0, stop=("<|im_end|>",), temperature=0.0, retries=0,
    )  # fmt: skip


def verdict(reply: str) -> Verdict:
    """How ``reply`` (raw, before any seam) follows :data:`PROBE_ANSWER`."""
    text = reply.lstrip()
    if not text:
        return "empty"
    if text.startswith("0"):
        return "continued"
    if re.match(r"1,\s*2\b", text):
        return "restarted"
    if re.match(r"(\d+,\s*)*10\b", text):
        return "repeated"
    return "answered anew"


@dataclass(frozen=True)
class ProbeResult:
    """One family tried: the reply's verdict, or the error that stopped it."""

    api: CloudApi
    reply: str = ""
    first_token_ms: float | None = None
    error: CloudError | None = None
    quirks: Quirks = field(default_factory=Quirks)

    @property
    def verdict(self) -> Verdict | None:
        return None if self.error is not None else verdict(self.reply)

    @property
    def usable(self) -> bool:
        return self.verdict in _USABLE.get(self.api, ("continued",))

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.api}: {self.error.message}"
        return f"{self.api}: {self.verdict} ({self.reply.strip()[:40]!r})"


def find_api(
    try_api: Callable[[CloudApi], ProbeResult], order: Sequence[CloudApi] = API_ORDER
) -> ProbeResult:
    """The first family in ``order`` whose probe reply continues the answer.

    An outage or a refused key ends the search with that error (nothing can be
    learned now); any other refusal moves on to the next family.
    """
    tried = []
    for api in order:
        result = try_api(api)
        if result.usable:
            return result
        tried.append(result)
        error = result.error
        if isinstance(error, CloudUnavailable) or (
            isinstance(error, UpstreamError) and error.upstream_status in (401, 403)
        ):
            raise error
    raise UpstreamError(
        "no API continues a partial answer there (" + "; ".join(r.describe() for r in tried)
        + "); set cloud_api to choose one",
        status_code=502,
    )  # fmt: skip

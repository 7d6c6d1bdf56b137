"""One cloud over HTTP, spoken to in its API family.

:class:`HttpCloud` owns the connection pool. Its :class:`FamilyResolver`
(:mod:`edge.clouds.resolver`) says, from the first call on, which family and
target to speak in; each call is then one streamed POST built by the family and
sent by :func:`edge.clouds.transport.stream_reply`, its reply joined to the
answer by the family's seam, the whole call one trace span. A 400 that names a
field the cloud refuses teaches the resolver a quirk, and the request is sent
again at once. Whoever streams may pass ``on_send`` to hear of every request
body just before it leaves, probes and re-sends included (the audit log does,
:class:`edge.clouds.audit.AuditedCloud`).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from edge.clouds.apis import ApiCall, ApiFamily, CloudApi, Quirks, Target
from edge.clouds.memory import ApiMemory
from edge.clouds.probe import PROBE_THINKING_TOKENS, ProbeResult, probe_request
from edge.clouds.providers import provider_for
from edge.clouds.resolver import ApiChoice, FamilyResolver, Speaker
from edge.clouds.seam import ReplyText
from edge.clouds.transport import Tally, stream_reply
from edge.core.cloud import CloudEnd, CloudItem, CloudRequest, CloudText
from edge.openai_compat import tracing
from protocol.errors import CloudError, UpstreamError

__all__ = ["HttpCloud", "OnSend", "SentRequest"]

_MAX_LESSONS = 6
"""Refusals one call may learn from (a reasoning model refuses up to four fields at once)."""


@dataclass(frozen=True)
class SentRequest:
    """One request body as it leaves for a cloud: ``payload`` is its bytes, as sent."""

    cloud: str
    url: str
    api: str
    call_id: str
    context_tokens: int
    payload: bytes
    body: Mapping[str, Any]


OnSend = Callable[[SentRequest], None]


@dataclass(frozen=True)
class Accepted:
    """A request the cloud took: the call as sent (after any lessons), the target with the
    quirks it was built for, and its reply: text pieces, then the tally."""

    call: ApiCall
    target: Target
    reply: Iterator[str | Tally]


class HttpCloud:
    """Calls the cloud at ``base_url`` (``…/v1``) in the API family ``api``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        api: ApiChoice = "completions",
        name: str | None = None,
        temperature: float = 0.7,
        stop: tuple[str, ...] = (),
        connect_timeout_s: float = 3.0,
        first_token_timeout_s: float = 20.0,
        total_timeout_s: float = 60.0,
        retries: int = 2,
        memory: ApiMemory | None = None,
    ) -> None:
        timeout = httpx.Timeout(
            connect=connect_timeout_s, read=first_token_timeout_s, write=10.0, pool=10.0
        )
        self._client = httpx.Client(timeout=timeout)
        self._closer = weakref.finalize(self, self._client.close)  # pooled sockets close with us
        self.base_url = base_url.rstrip("/")
        self.provider = provider_for(self.base_url)
        self.name = name or (self.provider.name if self.provider else _host(self.base_url))
        self.api_key, self.temperature, self.stop = api_key, temperature, stop
        self.total_timeout_s, self.retries = total_timeout_s, retries
        self.resolver = FamilyResolver(
            self._client, self.base_url, setting=api, model=model, provider=self.provider,
            memory=memory, defaults=Target(self.base_url, "", api_key, temperature, stop),
        )  # fmt: skip

    def stream(
        self, request: CloudRequest, *, on_send: OnSend | None = None
    ) -> Iterator[CloudItem]:
        speaker, target = self.speaker(on_send=on_send)
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": target.model,
            "gen_ai.request.max_tokens": request.max_tokens,
            "server.address": self.base_url,
            "relayllm.cloud": self.name,
            "relayllm.cloud_api": speaker.name,
            "relayllm.call_id": request.call_id,
        }
        with tracing.span("relayllm-edge", f"chat {target.model}", kind="CLIENT",
                          attributes=attributes):  # fmt: skip
            yield from self._stream(speaker, target, request, on_send)

    def speaker(self, *, on_send: OnSend | None = None) -> Speaker:
        """The family and target of this cloud, found on first use (model, ``auto``)."""
        return self.resolver.speaker(lambda api, model: self.try_api(api, model, on_send=on_send))

    def try_api(
        self,
        api: CloudApi,
        model: str | None = None,
        quirks: Quirks | None = None,
        *,
        on_send: OnSend | None = None,
    ) -> ProbeResult:
        """Send the probe (a known partial answer) in family ``api``; its raw reply or error.

        A reasoning model may spend the probe's few tokens thinking and show none: the
        probe is then sent once more with room for its reasoning.
        """
        resolver = self.resolver
        model = model or resolver.model or resolver.first_model()
        speaker, target = resolver.speaker_for(api, model, quirks or resolver.preset(api))
        started, first = time.monotonic(), None
        for request in (probe_request(), probe_request(PROBE_THINKING_TOKENS)):
            pieces, tally = [], None
            try:
                accepted = self._post(speaker, target, request, on_send)
                target = accepted.target
                for item in accepted.reply:
                    if isinstance(item, str):
                        first = first or (time.monotonic() - started) * 1000
                        pieces.append(item)
                    else:
                        tally = item
            except CloudError as exc:
                return ProbeResult(api, "".join(pieces), first, exc, target.quirks)
            thought = tally is not None and tally.completion_tokens >= request.max_tokens
            if "".join(pieces).strip() or not thought:
                break
        reply, quirks = speaker.read_probe("".join(pieces), target.quirks)
        return ProbeResult(api, reply, first, None, quirks)

    def listing_request(self) -> tuple[str, dict[str, str]]:
        """Where this cloud lists its models, and the headers that may ask (a health check)."""
        return self.resolver.listing_request()

    def close(self) -> None:
        self._closer()

    def _stream(
        self, speaker: ApiFamily, target: Target, request: CloudRequest, on_send: OnSend | None
    ) -> Iterator[CloudItem]:
        accepted = self._post(speaker, target, request, on_send)
        stops = target.stops_for(request, len(target.stop) + len(request.stop))
        reply, tally = ReplyText(accepted.call.seam(), stops), None
        try:
            for item in accepted.reply:
                if not isinstance(item, str):
                    tally = item
                elif shown := reply.feed(item):
                    yield CloudText(shown, self.name)
        except CloudError:
            if shown := reply.end(None)[0]:
                yield CloudText(shown, self.name)  # what arrived before the failure is kept
            raise
        assert tally is not None
        finish = "stop" if reply.stopped else tally.finish_reason
        shown, dropped = reply.end(finish)
        if shown:
            yield CloudText(shown, self.name)
        tracing.set_attributes(**{
            "gen_ai.usage.input_tokens": tally.prompt_tokens,
            "gen_ai.usage.output_tokens": tally.completion_tokens,
            "gen_ai.response.finish_reasons": [finish or "length"]})  # fmt: skip
        yield CloudEnd(
            outcome="ok", finish_reason=finish, completion_tokens=tally.completion_tokens,
            prompt_tokens=tally.prompt_tokens, cached_tokens=tally.cached_tokens,
            cache_write_tokens=tally.cache_write_tokens, cloud=self.name,
            reason="; ".join(note for note in (tally.note, dropped) if note),
        )  # fmt: skip

    def _post(
        self, speaker: ApiFamily, target: Target, request: CloudRequest, on_send: OnSend | None
    ) -> Accepted:
        """Send the call until the cloud takes it: a refusal that teaches a quirk is learned
        from and the call sent again; its first reply piece is read here, so a refusal is
        raised here and never after any text."""
        retries = self.retries if request.retries is None else min(self.retries, request.retries)
        lessons = 0
        while True:
            call = speaker.call(request, target)
            payload = json.dumps(call.body, ensure_ascii=False).encode("utf-8")
            if on_send is not None:
                on_send(SentRequest(self.name, call.url, speaker.name, request.call_id,
                                    request.context_tokens, payload, call.body))  # fmt: skip
            headers = dict(call.headers)
            tracing.inject(headers)  # the cloud's span joins this call's trace
            reply = stream_reply(self._client, call.url, payload, call.new_tally,
                                 headers=headers, total_timeout_s=self.total_timeout_s,
                                 retries=retries)  # fmt: skip
            try:
                first = next(reply)
            except UpstreamError as exc:
                learned = None
                if lessons < _MAX_LESSONS:
                    learned = self.resolver.lesson(speaker, target, exc, call.body)
                if learned is None:
                    raise
                target, lessons = learned, lessons + 1
                continue
            return Accepted(call, target, _after(first, reply))


def _after(first: str | Tally, rest: Iterator[str | Tally]) -> Iterator[str | Tally]:
    """``first``, then the rest of the reply."""
    yield first
    yield from rest


def _host(url: str) -> str:
    """``host`` or ``host:port`` of ``url``."""
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host or url

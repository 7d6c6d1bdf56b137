"""One cloud over HTTP, spoken to in its API family.

:class:`HttpCloud` resolves, on its first call, what it needs to know: the
model (the cloud's first listed one when none is named) and the API family
(``cloud_api``; ``auto`` takes a known host's from
:mod:`edge.clouds.providers`, or what :mod:`edge.clouds.memory` remembers, or
probes the URL once, :mod:`edge.clouds.probe`). Each call is then one streamed
POST built by the family, sent by :func:`edge.clouds.transport.stream_reply`,
its reply joined to the answer by the family's seam. A 400 that names a field
the cloud refuses teaches it a quirk and the request is sent again at once
(:class:`edge.clouds.apis.Quirks`), remembered for later runs.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

import httpx

from edge.clouds.apis import ApiCall, ApiFamily, CloudApi, Quirks, Target, family
from edge.clouds.audit import AuditLog
from edge.clouds.memory import ApiMemory, Learned
from edge.clouds.probe import PROBE_THINKING_TOKENS, ProbeResult, find_api, probe_request
from edge.clouds.providers import provider_for
from edge.clouds.seam import ReplyText, Seam
from edge.clouds.transport import Tally, stream_reply
from edge.core.cloud import CloudEnd, CloudItem, CloudRequest, CloudText
from edge.openai_compat import error_for_response, tracing, transport_errors
from protocol.errors import CloudError, CloudUnavailable, UpstreamError

__all__ = ["HttpCloud"]

ApiChoice = CloudApi | Literal["auto"]
_MAX_LESSONS = 6
"""Refusals one call may learn from (a reasoning model refuses up to four fields at once)."""


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
        audit: AuditLog | None = None,
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
        self.api_key, self.model, self.setting = api_key, model, api
        self.temperature, self.stop = temperature, stop
        self.total_timeout_s, self.retries = total_timeout_s, retries
        self.audit, self.memory = audit, memory
        self.how = "configured" if api != "auto" else "auto"
        self._lock = threading.RLock()  # held while probing, which may learn quirks
        self._speaker: tuple[ApiFamily, Target] | None = None
        self._unusable: UpstreamError | None = None
        self._models: list[dict[str, object]] | None = None
        self.probed: ProbeResult | None = None
        """The probe that found the family, when ``auto`` probed this cloud."""

    @property
    def api(self) -> ApiChoice:
        """The family in use (``auto`` until the first call has found it)."""
        return self._speaker[0].name if self._speaker else self.setting

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        speaker, target = self.speaker()
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
            yield from self._stream(speaker, target, request)

    def _stream(
        self, speaker: ApiFamily, target: Target, request: CloudRequest
    ) -> Iterator[CloudItem]:
        stops = target.stops_for(request, len(target.stop) + len(request.stop))
        reply, tally = ReplyText(Seam(), stops), None
        try:
            for item in self._send(speaker, target, request):
                if isinstance(item, Sent):
                    reply = ReplyText(item.call.seam(), stops)
                elif isinstance(item, str):
                    if shown := reply.feed(item):
                        yield CloudText(shown, self.name)
                else:
                    tally = item
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

    def speaker(self) -> tuple[ApiFamily, Target]:
        """The family and target of this cloud, found on first use (model, ``auto``)."""
        with self._lock:
            if self._unusable is not None:
                raise self._unusable
            if self._speaker is None:
                model = self.model or self._first_model()
                learned = self._recall(model) or self._find(model)
                self.how = learned.how
                self._speaker = self._speaker_for(learned.api, model, learned.quirks)
            return self._speaker

    def try_api(
        self, api: CloudApi, model: str | None = None, quirks: Quirks | None = None
    ) -> ProbeResult:
        """Send the probe (a known partial answer) in family ``api``; its raw reply or error.

        A reasoning model may spend the probe's few tokens thinking and show none: the
        probe is then sent once more with room for its reasoning.
        """
        model = model or self.model or self._first_model()
        speaker, target = self._speaker_for(api, model, quirks or self._preset(api))
        started, first = time.monotonic(), None
        for request in (probe_request(), probe_request(PROBE_THINKING_TOKENS)):
            pieces, tally = [], None
            try:
                for item in self._send(speaker, target, request):
                    if isinstance(item, Sent):
                        target = item.target
                    elif isinstance(item, str):
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
        speaker, target = self._speaker or self._speaker_for(
            "completions" if self.setting == "auto" else self.setting, "", Quirks()
        )
        return speaker.models_url(target.base_url), speaker.headers(target)

    def close(self) -> None:
        self._closer()

    def _send(
        self, speaker: ApiFamily, target: Target, request: CloudRequest
    ) -> Iterator[Sent | str | Tally]:
        """The call as sent (again after a lesson), then the raw reply pieces and tally."""
        retries = self.retries if request.retries is None else min(self.retries, request.retries)
        for lesson in range(_MAX_LESSONS + 1):
            call = speaker.call(request, target)
            payload = json.dumps(call.body, ensure_ascii=False).encode("utf-8")
            if self.audit is not None:
                self.audit.write(cloud=self.name, url=call.url, api=speaker.name,
                                 call_id=request.call_id, context_tokens=request.context_tokens,
                                 payload=payload, body=call.body)  # fmt: skip
            yield Sent(call, target)
            headers = dict(call.headers)
            tracing.inject(headers)  # the cloud's span joins this call's trace
            try:
                yield from stream_reply(self._client, call.url, payload, call.new_tally,
                                        headers=headers, total_timeout_s=self.total_timeout_s,
                                        retries=retries)  # fmt: skip
                return
            except UpstreamError as exc:
                quirks = speaker.adapt(exc, target) or target.quirks.learned_from(
                    exc, call.body, keep=speaker.needs
                )
                if quirks is None or lesson == _MAX_LESSONS:
                    raise
                target = self._learn(speaker, target, quirks)

    def _learn(self, speaker: ApiFamily, target: Target, quirks: Quirks) -> Target:
        """Keep what a refusal taught, for this process and (when it is ours) in memory."""
        learned = replace(target, quirks=quirks)
        with self._lock:
            if self._speaker is not None and self._speaker[0] is speaker:
                self._speaker = (speaker, learned)
                if self.memory is not None:
                    self.memory.put(self.base_url, learned.model,
                                    Learned(speaker.name, self.how, quirks))  # fmt: skip
        return learned

    def _recall(self, model: str) -> Learned | None:
        """The family: configured, remembered, a known host's, or relayllm's own server's
        (``None``: probe it)."""
        remembered = self.memory.get(self.base_url, model) if self.memory else None
        if remembered and self.setting in ("auto", remembered.api):
            return remembered
        if self.setting != "auto":
            return Learned(self.setting, "configured", self._preset(self.setting))
        if self.provider is not None:
            return Learned(self.provider.api, "known host", self.provider.quirks)
        return self._own_server(model)

    def _own_server(self, model: str) -> Learned | None:
        """relay-cloud (raw completions) or relay serve (continues a final assistant message),
        known by their model list; a model weak or scripted enough to fail the probe still
        continues text there."""
        try:
            listed = self._listing()
        except CloudError:
            return None  # no list: the probe will tell
        card = next((c for c in listed if isinstance(c, dict) and c.get("id") == model), {})
        if card.get("owned_by") != "relayllm":
            return None
        if card.get("relay") is None:
            return Learned("completions", "relay-cloud", Quirks())
        return Learned("chat-continue", "relay serve", Quirks())

    def _find(self, model: str) -> Learned:
        """Probe each family in turn; remember the first that continues the answer."""
        try:
            found = find_api(lambda api: self.try_api(api, model))
        except UpstreamError as exc:
            self._unusable = exc  # asking again in this process would answer the same
            raise
        self.probed = found
        learned = Learned(found.api, "probed", found.quirks)
        if self.memory is not None:
            self.memory.put(self.base_url, model, learned)
        return learned

    def _preset(self, api: CloudApi) -> Quirks:
        """What a known provider's reference says its API refuses, when ``api`` is its own."""
        return self.provider.quirks if self.provider and self.provider.api == api else Quirks()

    def _speaker_for(self, api: CloudApi, model: str, quirks: Quirks) -> tuple[ApiFamily, Target]:
        base = self.base_url
        if self.provider and self.provider.api == api and self.provider.base_url:
            base = self.provider.base_url
        target = Target(base, model, self.api_key, self.temperature, self.stop, quirks)
        return family(api), target

    def _first_model(self) -> str:
        """The cloud's first listed model (a hosted provider's list is no choice: it is asked
        for one)."""
        if self.provider is not None:
            raise UpstreamError(
                f"{self.provider.name} serves many models: name one (--cloud-model, cloud_model, "
                "or model in [[clouds]])",
                status_code=400,
            )
        listed = self._listing()
        try:
            self.model = str(listed[0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise CloudUnavailable(f"{self.base_url} lists no models; set the cloud model") from exc
        return self.model

    def _listing(self) -> list[dict[str, object]]:
        """The cloud's model list (OpenAI's and Anthropic's share one shape), read once."""
        if self._models is None:
            setting = "completions" if self.setting == "auto" else self.setting
            speaker, target = self._speaker_for(setting, "", Quirks())
            url = speaker.models_url(target.base_url)
            headers = speaker.headers(target)
            if self.setting == "auto" and self.api_key:  # either kind of key header may do
                headers |= family("anthropic").headers(target)
            with transport_errors(url):
                response = self._client.get(url, headers=headers)
            if response.status_code >= 400:
                raise error_for_response(response, response.content)
            try:
                self._models = list(response.json()["data"])
            except (ValueError, KeyError, TypeError) as exc:
                raise CloudUnavailable(f"{url} lists no models; set the cloud model") from exc
        return self._models


@dataclass(frozen=True)
class Sent:
    """A request on its way: the call and the target (with the quirks) it was built for."""

    call: ApiCall
    target: Target


def _host(url: str) -> str:
    """``host`` or ``host:port`` of ``url``."""
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host or url

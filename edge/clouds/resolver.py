"""Which API family a cloud speaks, to which model, and what it refuses: found once, kept.

A :class:`FamilyResolver` finds, on a cloud's first call, the family and
:class:`Target` to speak in: the model (the cloud's first listed one when none
is named) and the family (``cloud_api``; ``auto`` takes what
:mod:`edge.clouds.memory` remembers, a known host's from
:mod:`edge.clouds.providers`, relayllm's own servers' by their model list, or
else the first family whose probe continues the answer, :mod:`edge.clouds.probe`).
A 400 that names a field the cloud refuses teaches it a quirk
(:class:`edge.clouds.apis.Quirks`), kept for this process and remembered for
later runs. It sends nothing itself but the model list's GET: the HTTP client
(:mod:`edge.clouds.http`) sends the probes and the calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import httpx

from edge.clouds.apis import ApiFamily, CloudApi, Quirks, Target, family
from edge.clouds.memory import ApiMemory, Learned
from edge.clouds.probe import ProbeResult, find_api
from edge.clouds.providers import Provider
from edge.openai_compat import transport_errors
from edge.openai_compat.client import first_model, listed_models
from protocol.errors import CloudError, UpstreamError

__all__ = ["ApiChoice", "FamilyResolver", "Probe", "Speaker"]

ApiChoice = CloudApi | Literal["auto"]
Speaker = tuple[ApiFamily, Target]
Probe = Callable[[CloudApi, str], ProbeResult]
"""Sends the probe in a family to a model: the HTTP client's ``try_api``."""


class FamilyResolver:
    """The family and target of the cloud at ``base_url``; ``defaults`` holds its key,
    temperature and stop strings."""

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        *,
        defaults: Target,
        setting: ApiChoice,
        model: str | None,
        provider: Provider | None,
        memory: ApiMemory | None,
    ) -> None:
        self._client = client
        self.base_url, self.defaults, self.setting = base_url, defaults, setting
        self.model, self.provider, self.memory = model, provider, memory
        self.how = "configured" if setting != "auto" else "auto"
        self._lock = threading.RLock()  # held while probing, which may learn quirks
        self._speaker: Speaker | None = None
        self._unusable: UpstreamError | None = None
        self._models: list[dict[str, object]] | None = None
        self.probed: ProbeResult | None = None
        """The probe that found the family, when ``auto`` probed this cloud."""

    @property
    def api(self) -> ApiChoice:
        """The family in use (``auto`` until the first call has found it)."""
        return self._speaker[0].name if self._speaker else self.setting

    def speaker(self, probe: Probe) -> Speaker:
        """The family and target of this cloud, found on first use (model, ``auto``)."""
        with self._lock:
            if self._unusable is not None:
                raise self._unusable
            if self._speaker is None:
                model = self.model or self.first_model()
                learned = self._recall(model) or self._find(model, probe)
                self.how = learned.how
                self._speaker = self.speaker_for(learned.api, model, learned.quirks)
            return self._speaker

    def lesson(
        self, speaker: ApiFamily, target: Target, error: UpstreamError, body: dict[str, object]
    ) -> Target | None:
        """The target with what a refusal of ``body`` taught (``None``: nothing to learn),
        kept for this process and (when it is the cloud's speaker) in memory."""
        quirks = speaker.adapt(error, target) or target.quirks.learned_from(
            error, body, keep=speaker.needs
        )
        if quirks is None:
            return None
        learned = replace(target, quirks=quirks)
        with self._lock:
            if self._speaker is not None and self._speaker[0] is speaker:
                self._speaker = (speaker, learned)
                if self.memory is not None:
                    self.memory.put(self.base_url, learned.model,
                                    Learned(speaker.name, self.how, quirks))  # fmt: skip
        return learned

    def speaker_for(self, api: CloudApi, model: str, quirks: Quirks) -> Speaker:
        """Family ``api`` addressing ``model`` (on a provider's own URL for its family)."""
        base = self.base_url
        if self.provider and self.provider.api == api and self.provider.base_url:
            base = self.provider.base_url
        return family(api), replace(self.defaults, base_url=base, model=model, quirks=quirks)

    def preset(self, api: CloudApi) -> Quirks:
        """What a known provider's reference says its API refuses, when ``api`` is its own."""
        return self.provider.quirks if self.provider and self.provider.api == api else Quirks()

    def listing_request(self) -> tuple[str, dict[str, str]]:
        """Where this cloud lists its models, and the headers that may ask (a health check)."""
        speaker, target = self._speaker or self.speaker_for(
            "completions" if self.setting == "auto" else self.setting, "", Quirks()
        )
        return speaker.models_url(target.base_url), speaker.headers(target)

    def first_model(self) -> str:
        """The cloud's first listed model (a hosted provider's list is no choice: it is asked
        for one)."""
        if self.provider is not None:
            raise UpstreamError(
                f"{self.provider.name} serves many models: name one (--cloud-model, cloud_model, "
                "or model in [[clouds]])",
                status_code=400,
            )
        self.model = first_model(self._listing(), self.base_url, hint="set the cloud model")
        return self.model

    def _recall(self, model: str) -> Learned | None:
        """The family: configured, remembered, a known host's, or relayllm's own server's
        (``None``: probe it)."""
        remembered = self.memory.get(self.base_url, model) if self.memory else None
        if remembered and self.setting in ("auto", remembered.api):
            return remembered
        if self.setting != "auto":
            return Learned(self.setting, "configured", self.preset(self.setting))
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

    def _find(self, model: str, probe: Probe) -> Learned:
        """Probe each family in turn; remember the first that continues the answer."""
        try:
            found = find_api(lambda api: probe(api, model))
        except UpstreamError as exc:
            self._unusable = exc  # asking again in this process would answer the same
            raise
        self.probed = found
        learned = Learned(found.api, "probed", found.quirks)
        if self.memory is not None:
            self.memory.put(self.base_url, model, learned)
        return learned

    def _listing(self) -> list[dict[str, object]]:
        """The cloud's model list (OpenAI's and Anthropic's share one shape), read once."""
        if self._models is None:
            setting = "completions" if self.setting == "auto" else self.setting
            speaker, target = self.speaker_for(setting, "", Quirks())
            url = speaker.models_url(target.base_url)
            headers = speaker.headers(target)
            if self.setting == "auto" and self.defaults.api_key:  # either key header may do
                headers |= family("anthropic").headers(target)
            with transport_errors(url):
                response = self._client.get(url, headers=headers)
            self._models = listed_models(response, url, hint="set the cloud model")
        return self._models

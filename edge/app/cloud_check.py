"""``relay cloud check``: does each configured cloud work as a relay cloud?

For each cloud, one tiny continuation of the probe's known partial answer
(:mod:`edge.clouds.probe`) in the family the relay would use (probing all of
them first when ``auto`` does not know the URL), and one :class:`CloudCheck`:
the family and how it was chosen, whether the key was accepted, the model, the
time to the first token, whether the reply continued the partial answer, and
the prices the ledger bills.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.app.cloud_stack import audit_log, http_clouds
from edge.app.settings import EdgeSettings
from edge.clouds.http import HttpCloud, OnSend
from edge.clouds.probe import ProbeResult
from edge.clouds.settings import Price
from protocol.errors import CloudError, CloudUnavailable, UpstreamError

__all__ = ["CloudCheck", "check_clouds", "unreachable"]


@dataclass(frozen=True)
class CloudCheck:
    """What one probe of one cloud showed."""

    name: str
    url: str
    api: str
    how: str
    model: str
    auth: str
    first_token_ms: float | None
    verdict: str
    price: Price
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.verdict in ("continued", "repeated")

    def line(self) -> str:
        """One line for people."""
        latency = f"first token {self.first_token_ms:.0f} ms" if self.first_token_ms else ""
        price = f"${self.price.prompt:g}/${self.price.completion:g} per M tokens"
        if self.price.cached_prompt is not None:
            price += f" (cached ${self.price.cached_prompt:g})"
        if not (self.price.prompt or self.price.completion):
            price = "no prices set"
        parts = [f"{'ok' if self.ok else 'FAILED'} {self.name}", f"{self.api} ({self.how})",
                 f"auth {self.auth}", self.model or "(no model)", latency,
                 self.verdict, price, self.error]  # fmt: skip
        return " · ".join(part for part in parts if part)

    def to_json(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in self.__dataclass_fields__}
        return data | {"ok": self.ok, "price": self.price.model_dump()}


def check_clouds(settings: EdgeSettings) -> list[CloudCheck]:
    """Probe every configured cloud in turn (the probes go to the audit log); never raises
    for a cloud's failure."""
    audit = audit_log(settings)
    return [
        _check(http, settings.price_of(cloud), audit.write)
        for cloud, http in zip(settings.cloud_list(), http_clouds(settings))
    ]


def _check(http: HttpCloud, price: Price, on_send: OnSend) -> CloudCheck:
    def result(probe: ProbeResult | None, error: CloudError | None) -> CloudCheck:
        error = error or (probe.error if probe else None)
        api, how = str(http.resolver.api), http.resolver.how
        if api == "auto" and http.provider is not None:
            api, how = http.provider.api, "known host"
        auth = _auth(error, probe)
        if not http.api_key and http.provider is not None:
            auth = f"no key (set {http.provider.key_env})"
        return CloudCheck(
            name=http.name, url=http.base_url, api=api, how=how,
            model=http.resolver.model or "", auth=auth, price=price,
            first_token_ms=probe.first_token_ms if probe else None,
            verdict=(probe.verdict or "") if probe else "", error=error.message if error else "",
        )  # fmt: skip

    try:
        speaker, target = http.speaker(on_send=on_send)
        probe = http.resolver.probed or http.try_api(speaker.name, target.model, target.quirks,
                                            on_send=on_send)  # fmt: skip
    except CloudError as exc:
        return result(None, exc)
    finally:
        http.close()
    error = None if probe.usable or probe.error else CloudError(
        f"the reply did not continue the partial answer: {probe.reply.strip()[:60]!r}"
    )  # fmt: skip
    return result(probe, error)


def _auth(error: CloudError | None, probe: ProbeResult | None) -> str:
    """``ok`` only when the cloud answered past its key check: a reply, or a refusal of
    something else (another 4xx); ``unknown`` when no answer came back at all."""
    if isinstance(error, UpstreamError):
        status = error.upstream_status
        return f"refused ({status})" if status in (401, 403) else "ok"
    if isinstance(error, CloudUnavailable) and not (probe and probe.reply):
        return "unknown"
    return "ok" if probe is not None else "unknown"


def unreachable(settings: EdgeSettings, timeout_s: float = 2.0) -> str | None:
    """Why the first cloud cannot be reached (one line), or ``None`` when it answers at all.

    One GET of its model list: cheap, and no call is spent. Any answer, even an
    error status, means the cloud is there.
    """
    import httpx

    (first, *_) = http_clouds(settings)
    url, headers = first.listing_request()
    try:
        httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"the cloud at {first.base_url} cannot be reached ({type(exc).__name__}: {exc})"
    finally:
        first.close()
    return None

"""The guarded cloud client for a relay's settings.

Outermost first::

    PrivacyCap        contexts over the cap never leave the device
    CloudChain        each call goes to the first cloud that answers
      per cloud:
      FallbackCloud   a failure ends the call (the chain moves on; after the last, the SLM)
      CircuitBreaker  skip the cloud after repeated outages or while it asked to wait
      BudgetedCloud   reserve the worst case against the device's and the cloud's caps, settle
      AuditedCloud    write each request body to the audit log as it leaves
      HttpCloud       stream from the cloud in its API family

The breaker comes before the budget, so a cloud skipped while its breaker is open costs no
reservation; a call the budget refuses is no outage to the breaker. Every budget bills the
one ledger it is given (the runtime's, :attr:`edge.app.runtime.Relay.ledger`).

``offline`` replaces all of it with :class:`OfflineCloud`, which opens no socket.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edge.app.ledger import Ledger
from edge.app.settings import EdgeSettings, data_dir
from edge.clouds.audit import AuditedCloud, AuditLog
from edge.clouds.breaker import CircuitBreaker
from edge.clouds.budget import AnswerTally, BudgetedCloud
from edge.clouds.chain import CloudChain
from edge.clouds.fallback import FallbackCloud, OfflineCloud
from edge.clouds.http import HttpCloud
from edge.clouds.memory import ApiMemory
from edge.clouds.privacy import PrivacyCap
from edge.clouds.providers import provider_for
from edge.clouds.settings import CloudTarget
from edge.core.cloud import CloudClient, CloudItem, CloudRequest

__all__ = ["CloudStack", "GuardedCloud", "audit_log", "build_cloud", "http_clouds"]


@dataclass(frozen=True)
class GuardedCloud:
    """One cloud of the chain: its HTTP client and its breaker (for status pages)."""

    name: str
    http: HttpCloud
    breaker: CircuitBreaker


class CloudStack:
    """The built client: streams calls, and knows each of its clouds by name."""

    def __init__(self, inner: CloudClient, clouds: tuple[GuardedCloud, ...]) -> None:
        self.inner = inner
        self.clouds = clouds

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        return self.inner.stream(request)


def http_clouds(settings: EdgeSettings) -> list[HttpCloud]:
    """The configured clouds as HTTP clients, unguarded (``relay cloud check`` probes these).

    Each is named as configured, else by its provider or host (``-2``, ... when taken), with
    the global temperature, timeouts and retries unless it sets its own.
    """
    memory = ApiMemory(data_dir() / "clouds.json")
    options = {
        "temperature": settings.cloud_temperature, "stop": tuple(settings.cloud_stop),
        "connect_timeout_s": settings.connect_timeout_s, "retries": settings.retries,
        "first_token_timeout_s": settings.first_token_timeout_s,
        "total_timeout_s": settings.total_timeout_s, "memory": memory,
    }  # fmt: skip
    clouds = [
        HttpCloud(cloud.url, api_key=_key(cloud), model=cloud.model, api=cloud.cloud_api,
                  name=cloud.name, **(options | cloud.options()))  # type: ignore[arg-type]
        for cloud in settings.cloud_list()
    ]  # fmt: skip
    seen: Counter[str] = Counter()
    for cloud in clouds:
        seen[cloud.name] += 1
        if seen[cloud.name] > 1:
            cloud.name = f"{cloud.name}-{seen[cloud.name]}"
    return clouds


def audit_log(settings: EdgeSettings) -> AuditLog:
    """The audit log of what the clouds are sent (created now: an unwritable path fails here)."""
    return AuditLog(settings.resolved_audit_path(), full_text=settings.audit_full_text)


def build_cloud(settings: EdgeSettings, *, ledger: Ledger | None = None) -> CloudClient:
    """The guarded cloud client for ``settings`` (see the module docstring)."""
    if settings.offline:
        return OfflineCloud()
    ledger = Ledger(settings.resolved_ledger_path()) if ledger is None else ledger
    answers = AnswerTally()
    audit = audit_log(settings)
    chain: list[tuple[str, CloudClient]] = []
    guarded: list[GuardedCloud] = []
    for cloud, http in zip(settings.cloud_list(), http_clouds(settings)):
        budgeted = BudgetedCloud(
            AuditedCloud(http, audit), ledger, caps=settings.caps, price=settings.price_of(cloud),
            endpoint=http.base_url, model=_model_of(http), cloud=http.name,
            cloud_caps=cloud.caps, answers=answers,
        )  # fmt: skip
        breaker = CircuitBreaker(
            budgeted, failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s
        )
        chain.append((http.name, FallbackCloud(breaker, cloud=http.name)))
        guarded.append(GuardedCloud(http.name, http, breaker))
    client: CloudClient = CloudChain(chain, max_attempts=settings.max_attempts)
    if settings.max_context_tokens is not None:
        client = PrivacyCap(client, settings.max_context_tokens)
    return CloudStack(client, tuple(guarded))


def _model_of(http: HttpCloud) -> str | Callable[[], str]:
    """The cloud's model, or how to read it once its first call has found it."""
    return http.resolver.model or (lambda: http.resolver.model or "(unknown model)")


def _key(cloud: CloudTarget) -> str | None:
    """The key given, else the one in ``key_env`` or in the provider's own variable."""
    if cloud.key is not None:
        return cloud.key.get_secret_value()
    provider = provider_for(cloud.url)
    variable = cloud.key_env or (provider.key_env if provider else None)
    return os.environ.get(variable) if variable else None

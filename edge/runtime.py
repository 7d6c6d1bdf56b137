"""Assembles the relay from settings: the SLM, the policy and the guarded cloud client.

The cloud stack, outermost first::

    FallbackCloud   a failure ends the call; the SLM goes on
    PrivacyCap      contexts over the cap never leave the device
    BudgetedCloud   reserve worst case in the ledger, shrink or refuse, settle
    CircuitBreaker  skip the cloud after repeated failures, probe later
    AuditedCloud    log size and hash of what is sent
    HttpCloud       stream from the OpenAI-compatible endpoint

``offline`` replaces all of it with :class:`OfflineCloud`, which opens no socket.
"""

from __future__ import annotations

from edge.audit import AuditedCloud
from edge.breaker import CircuitBreaker
from edge.budget import BudgetedCloud
from edge.cloud import CloudClient
from edge.fallback import FallbackCloud, OfflineCloud
from edge.http_cloud import HttpCloud
from edge.ledger import Ledger
from edge.llama_model import LlamaModel, SamplingParams
from edge.policies import make_policy
from edge.privacy import PrivacyCap
from edge.relay import RelayLimits, RelayLoop
from edge.settings import EdgeSettings, Price

__all__ = ["build_cloud", "build_relay", "load_slm"]


def build_cloud(
    settings: EdgeSettings, *, ledger: Ledger | None = None, stops: tuple[str, ...] = ()
) -> CloudClient:
    """The guarded cloud client for ``settings`` (see the module docstring).

    ``stops`` are added to the configured stop markers (the SLM's end-of-turn text).
    """
    if settings.offline:
        return OfflineCloud()
    key = settings.cloud_key
    http = HttpCloud(
        settings.cloud_url,
        api_key=key.get_secret_value() if key else None,
        model=settings.cloud_model,
        mode=settings.cloud_mode,
        temperature=settings.cloud_temperature,
        stop=tuple(dict.fromkeys([*settings.cloud_stop, *stops])),
        connect_timeout_s=settings.connect_timeout_s,
        first_token_timeout_s=settings.first_token_timeout_s,
        total_timeout_s=settings.total_timeout_s,
        retries=settings.retries,
    )
    audited = AuditedCloud(
        http,
        settings.resolved_audit_path(),
        endpoint=settings.cloud_url,
        full_text=settings.audit_full_text,
    )
    guarded: CloudClient = CircuitBreaker(
        audited, failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s
    )
    model = settings.cloud_model or "default"
    guarded = BudgetedCloud(
        guarded,
        ledger or Ledger(settings.resolved_ledger_path()),
        caps=settings.caps,
        price=settings.prices.get(model, Price()),
        endpoint=settings.cloud_url,
        model=model,
    )
    if settings.max_context_tokens is not None:
        guarded = PrivacyCap(guarded, settings.max_context_tokens)
    return FallbackCloud(guarded)


def load_slm(settings: EdgeSettings) -> LlamaModel:
    from edge.bundled import resolve_model

    path = resolve_model(settings.slm, default="slm")
    return LlamaModel(path, n_ctx=settings.n_ctx, n_threads=settings.n_threads)


def build_relay(
    settings: EdgeSettings, model: LlamaModel | None = None, cloud: CloudClient | None = None
) -> RelayLoop:
    """A relay loop for ``settings``; pass ``model``/``cloud`` to re-use existing ones."""
    policy = make_policy(
        settings.policy,
        threshold=settings.entropy_threshold,
        rate=settings.random_rate,
        n=settings.policy_call_tokens,
        seed=settings.seed,
    )
    limits = RelayLimits(
        max_calls=settings.max_calls,
        max_tokens=settings.max_tokens,
        max_call_tokens=settings.max_call_tokens,
    )
    sampling = SamplingParams(temperature=settings.temperature, seed=settings.seed)
    model = model or load_slm(settings)
    end_of_turn = model.special_token_text("eos")
    return RelayLoop(
        model,
        cloud or build_cloud(settings, stops=(end_of_turn,) if end_of_turn else ()),
        policy,
        limits=limits,
        sampling=sampling,
    )

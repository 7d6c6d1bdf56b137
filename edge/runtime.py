"""Assembles the relay from settings: the SLM, its chat format, the policy and the guarded cloud.

The cloud stack, outermost first::

    FallbackCloud   a failure ends the call; the SLM goes on
    PrivacyCap      contexts over the cap never leave the device
    BudgetedCloud   reserve worst case in the ledger, shrink or refuse, settle
    CircuitBreaker  skip the cloud after repeated outages, probe later
    AuditedCloud    log size and hash of what is sent
    HttpCloud       stream from the OpenAI-compatible endpoint

``offline`` replaces all of it with :class:`OfflineCloud`, which opens no socket.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping, Sequence

from edge.audit import AuditedCloud
from edge.breaker import CircuitBreaker
from edge.budget import BudgetedCloud
from edge.client import CloudClient
from edge.fallback import FallbackCloud, OfflineCloud
from edge.ledger import Ledger
from edge.llama import LlamaChat, LlamaModel
from edge.loop import RelayLoop
from edge.policies import make_policy
from edge.privacy import PrivacyCap
from edge.prompt import RelayPrompt, build_prompt
from edge.record import AnswerRecord
from edge.relay import RelayLimits
from edge.settings import EdgeSettings, Price
from protocol.events import RelayEvent
from protocol.sampling import SamplingParams

__all__ = ["Relay", "build_cloud", "build_relay", "load_slm"]


def build_cloud(settings: EdgeSettings, *, ledger: Ledger | None = None) -> CloudClient:
    """The guarded cloud client for ``settings`` (see the module docstring)."""
    if settings.offline:
        return OfflineCloud()
    from edge.http_cloud import HttpCloud

    key = settings.cloud_key
    http = HttpCloud(
        settings.cloud_url,
        api_key=key.get_secret_value() if key else None,
        model=settings.cloud_model,
        mode=settings.cloud_mode,
        temperature=settings.cloud_temperature,
        stop=tuple(settings.cloud_stop),
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
    guarded = BudgetedCloud(
        guarded,
        ledger or Ledger(settings.resolved_ledger_path()),
        caps=settings.caps,
        price=settings.prices.get(settings.cloud_model or "", Price()),
        endpoint=settings.cloud_url,
        model=settings.cloud_model or (lambda: http.model or "(unknown model)"),
    )
    if settings.max_context_tokens is not None:
        guarded = PrivacyCap(guarded, settings.max_context_tokens)
    return FallbackCloud(guarded)


def load_slm(settings: EdgeSettings) -> LlamaModel:
    from edge.llama import resolve_model

    path = resolve_model(settings.slm, default="slm")
    return LlamaModel(
        path, n_ctx=settings.n_ctx, n_threads=settings.n_threads, kv_cache=settings.kv_cache
    )


class Relay:
    """The relay as the CLI and servers use it: the loop, the SLM's chat format, the settings."""

    def __init__(self, loop: RelayLoop, chat: LlamaChat, settings: EdgeSettings) -> None:
        self.loop = loop
        self.chat = chat
        self.settings = settings

    @property
    def breaker_state(self) -> str:
        """The circuit breaker's state (``closed``, ``open``, ``half-open``), or ``none``."""
        cloud: object = self.loop.cloud
        while cloud is not None:
            if isinstance(cloud, CircuitBreaker):
                return cloud.state
            cloud = getattr(cloud, "inner", None)
        return "none"

    @property
    def model(self) -> LlamaModel:
        return self.chat.model

    @property
    def record(self) -> AnswerRecord | None:
        """The latest answer's record."""
        return self.loop.record

    def prompt(
        self, messages: Sequence[Mapping[str, str]], *, continue_final: bool = False
    ) -> RelayPrompt:
        """The prompt for ``messages``, oldest turns dropped if the conversation outgrew the
        context (room is kept for a quarter of the context or ``max_tokens``, the smaller).
        With ``continue_final`` a final assistant message is continued, not answered."""
        n_ctx = self.model.n_ctx
        reserve = min(self.loop.limits.max_tokens, n_ctx // 4)
        return build_prompt(
            self.chat, messages, n_ctx=n_ctx, reserve=reserve, continue_final=continue_final
        )

    def answer(
        self,
        prompt: RelayPrompt,
        *,
        prefix: str = "",
        seed: int | None = None,
        sampling: SamplingParams | None = None,
        limits: RelayLimits | None = None,
    ) -> Iterator[RelayEvent]:
        """Events of one answer to ``prompt`` (see :meth:`RelayLoop.run`)."""
        return self.loop.run(prompt, prefix=prefix, seed=seed, sampling=sampling, limits=limits)


def build_relay(
    settings: EdgeSettings, model: LlamaModel | None = None, cloud: CloudClient | None = None
) -> Relay:
    """The relay for ``settings``; pass ``model``/``cloud`` to re-use existing ones."""
    policy = make_policy(
        settings.policy,
        threshold=settings.entropy_threshold,
        p=settings.random_p,
        n=settings.policy_call_tokens,
    )
    limits = RelayLimits(
        max_calls=settings.max_calls,
        max_tokens=settings.max_tokens,
        max_call_tokens=settings.max_call_tokens,
        repeat_guard=settings.repeat_guard,
    )
    sampling = SamplingParams(
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=settings.seed,
        repeat_penalty=settings.repeat_penalty,
        presence_penalty=settings.presence_penalty,
        penalty_last_n=settings.repeat_last_n,
    )
    if cloud is None and not settings.offline:  # the HTTP stack imports while the model loads
        threading.Thread(
            target=importlib.import_module, args=("edge.http_cloud",), daemon=True
        ).start()
    model = model or load_slm(settings)
    loop = RelayLoop(
        model, cloud or build_cloud(settings), policy, limits=limits, sampling=sampling
    )
    return Relay(loop, LlamaChat(model, enable_thinking=settings.enable_thinking), settings)

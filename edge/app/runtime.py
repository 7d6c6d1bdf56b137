"""Assembles the relay from settings: the SLM, its chat format, the policy and the guarded cloud.

The cloud stack is :func:`edge.app.cloud_stack.build_cloud`'s: a privacy cap, then
the clouds in order, each behind its own fallback, breaker and budget, all billing the one
ledger the relay owns (:attr:`Relay.ledger`).
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from edge.app.settings import EdgeSettings
from edge.core.cloud import CloudClient
from edge.core.loop import RelayLoop
from edge.core.policies import PolicyChoice, choose_policy, make_policy, quiet_commands
from edge.core.prompt import RelayPrompt, build_prompt
from edge.core.record import AnswerRecord
from edge.core.relay import RelayLimits
from edge.llama import LlamaChat, LlamaModel
from edge.openai_compat import tracing
from protocol.sampling import SamplingParams

if TYPE_CHECKING:
    from edge.app.ledger import Ledger

__all__ = ["Relay", "build_cloud", "build_relay", "load_slm", "policy_for", "quiet_if_ignored"]


def build_cloud(settings: EdgeSettings, *, ledger: Ledger | None = None) -> CloudClient:
    """The guarded cloud client for ``settings`` (:func:`edge.app.cloud_stack.build_cloud`),
    billing ``ledger`` (default: the settings' own, opened here); offline, no HTTP stack is
    even imported."""
    if settings.offline:
        from edge.clouds.fallback import OfflineCloud

        return OfflineCloud()
    from edge.app.cloud_stack import build_cloud as build

    return build(settings, ledger=ledger)


def load_slm(settings: EdgeSettings) -> LlamaModel:
    from edge.llama import resolve_model

    path = resolve_model(settings.slm, default="slm")
    return LlamaModel(
        path, n_ctx=settings.n_ctx, n_threads=settings.n_threads, kv_cache=settings.kv_cache,
        n_gpu_layers=settings.n_gpu_layers,
    )  # fmt: skip


def policy_for(settings: EdgeSettings, model: LlamaModel) -> PolicyChoice:
    """The policy ``settings`` ask of this SLM: ``auto`` reads its GGUF's ``relayllm.`` card,
    the entropy threshold comes from the settings, else the SLM's calibration."""
    from protocol.model_card import trained_card

    trained = trained_card(model.metadata) is not None
    needs_threshold = settings.entropy_threshold is None and (
        settings.policy == "entropy"
        or (settings.policy == "auto" and not trained and not settings.offline)
    )
    calibrated = None
    if needs_threshold:
        from edge.app.calibration import CalibrationStore
        from edge.app.settings import data_dir
        from edge.llama import bundled

        shipped = bundled.BUNDLED["slm"]
        known = shipped.sha256 if model.path == bundled.model_path("slm") else None
        found = CalibrationStore(data_dir() / "calibration.json").lookup(
            model.path, known_sha256=known
        )
        calibrated = found.threshold if found else None
    return choose_policy(settings.policy, trained=trained, threshold=settings.entropy_threshold,
                         calibrated=calibrated, offline=settings.offline)  # fmt: skip


class Relay:
    """The relay as the CLI and servers use it: the loop, the SLM's chat format, the settings,
    and the policy chosen (``policy``: name, threshold and why)."""

    def __init__(
        self,
        loop: RelayLoop,
        chat: LlamaChat,
        settings: EdgeSettings,
        policy: PolicyChoice,
        ledger: Ledger | None = None,
    ) -> None:
        self.loop = loop
        self.answer = loop.run
        """Events of one answer to a prompt (:meth:`RelayLoop.run`)."""
        self.chat = chat
        self.settings = settings
        self.policy = policy
        self._ledger = ledger
        self._ledger_lock = threading.Lock()

    @property
    def ledger(self) -> Ledger | None:
        """The device's spend ledger, the one its clouds bill (opened once, on first use when
        the cloud was given); ``None`` offline. The page and ``/metrics`` read it."""
        if self.settings.offline:
            return None
        with self._ledger_lock:
            if self._ledger is None:
                from edge.app.ledger import Ledger

                self._ledger = Ledger(self.settings.resolved_ledger_path())
            return self._ledger

    @property
    def clouds(self) -> list[dict[str, str]]:
        """Each cloud in order: name, URL, model, API family, breaker state and last error."""
        return [
            {"name": c.name, "url": c.http.base_url, "model": c.http.resolver.model or "",
             "api": c.http.resolver.api, "breaker": c.breaker.state,
             "last_error": c.breaker.last_error}
            for c in getattr(self.loop.cloud, "clouds", ())
        ]  # fmt: skip

    @property
    def breaker_state(self) -> str:
        """The first cloud's breaker state (``closed``, ``open``, ``half-open``), or ``none``."""
        clouds = self.clouds
        return clouds[0]["breaker"] if clouds else "none"

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


def _fields(settings: EdgeSettings, target: type, **renamed: str) -> dict[str, object]:
    """The values ``settings`` hold for ``target``'s fields (same name, or the one ``renamed``
    gives)."""
    names = [f.name for f in dataclasses.fields(target)]
    return {
        name: getattr(settings, renamed.get(name, name))
        for name in names
        if hasattr(settings, renamed.get(name, name))
    }


def quiet_if_ignored(
    sampling: SamplingParams, choice: PolicyChoice, model: LlamaModel
) -> SamplingParams:
    """``sampling`` that keeps an SLM trained to call from writing commands the chosen policy
    would skip (any policy but ``learned``), as the evaluation runs it: its answer then goes
    on by itself instead of waiting on a call that does not come."""
    from protocol.model_card import trained_card

    if choice.name == "learned" or trained_card(model.metadata) is None:
        return sampling
    biases = dict(sampling.logit_bias) | dict(quiet_commands(model))
    return dataclasses.replace(sampling, logit_bias=tuple(biases.items()))


def build_relay(
    settings: EdgeSettings, model: LlamaModel | None = None, cloud: CloudClient | None = None
) -> Relay:
    """The relay for ``settings``; pass ``model``/``cloud`` to re-use existing ones."""
    limits = RelayLimits(**_fields(settings, RelayLimits))
    sampling = SamplingParams(**_fields(settings, SamplingParams, penalty_last_n="repeat_last_n"))
    if cloud is None and not settings.offline:  # the HTTP stack imports while the model loads
        threading.Thread(
            target=importlib.import_module, args=("edge.app.cloud_stack",), daemon=True
        ).start()
    model = model or load_slm(settings)
    choice = policy_for(settings, model)
    sampling = quiet_if_ignored(sampling, choice, model)
    policy = make_policy(
        choice.name, threshold=choice.threshold, p=settings.random_p, n=settings.policy_call_tokens
    )
    tracer = partial(tracing.started, "relayllm-edge")
    ledger = None
    if cloud is None and not settings.offline:
        from edge.app.ledger import Ledger

        ledger = Ledger(settings.resolved_ledger_path())
    loop = RelayLoop(model, cloud or build_cloud(settings, ledger=ledger), policy, limits=limits,
                     sampling=sampling, tracer=tracer)  # fmt: skip
    chat = LlamaChat(model, enable_thinking=settings.enable_thinking)
    return Relay(loop, chat, settings, choice, ledger)

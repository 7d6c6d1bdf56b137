"""Settings of the edge runtime: env prefix ``RELAYLLM_``, a TOML file, CLI flags on top.

Precedence: flags, then environment, then ``relayllm.toml`` in the user config
dir (or the file named by ``RELAYLLM_CONFIG``), then defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.clouds.settings import CapSettings, CloudApiName, CloudTarget, Price, http_url
from edge.llama.fields import CpuThreads, GpuLayers
from edge.openai_compat.serving import ServingSettings

__all__ = ["EdgeSettings", "PolicyName", "config_path", "data_dir"]

PolicyName = Literal["auto", "learned", "entropy", "random", "never", "cloud"]
_OLD_MODES = {"raw": "completions", "chat": "chat-continue"}


def data_dir() -> Path:
    """Where the ledger and audit log live (``RELAYLLM_DATA_DIR`` overrides)."""
    override = os.environ.get("RELAYLLM_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("relayllm"))


def config_path() -> Path:
    override = os.environ.get("RELAYLLM_CONFIG")
    return (
        Path(override)
        if override
        else Path(platformdirs.user_config_dir("relayllm")) / ("relayllm.toml")
    )


class EdgeSettings(BaseSettings, ServingSettings):
    """Everything ``relay run`` / ``chat`` / ``serve`` can be told (``relay serve``'s limits on
    one answer: :class:`ServingSettings`)."""

    model_config = SettingsConfigDict(
        env_prefix="RELAYLLM_", env_nested_delimiter="__", extra="ignore"
    )

    slm: str | None = Field(None, description="GGUF path of the SLM (default: the bundled one).")
    n_ctx: int = Field(8192, ge=512, le=262144, description="SLM context window.")
    kv_cache: Literal["q8_0", "q8_0/q4_0", "f16"] = Field(
        "q8_0",
        description="SLM KV cache types (keys/values): q8_0 holds a context in half f16's "
        "memory; q8_0/q4_0 in 39 %, decoding slower in long contexts.",
    )
    n_threads: CpuThreads = None
    n_gpu_layers: GpuLayers = Field(
        "auto",
        description="SLM layers on the GPU: auto (all on a GPU build, none on a CPU build), a "
        "number, 0 (CPU only) or -1 (all).",
    )
    temperature: float = Field(0.7, ge=0, le=2, description="SLM sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="SLM nucleus sampling (1: off).")
    repeat_penalty: float = Field(
        1.1, ge=1, le=2, description="Penalty on tokens the SLM drew lately (1: off)."
    )
    presence_penalty: float = Field(0.0, ge=0, le=2, description="Penalty on any drawn token.")
    repeat_last_n: int = Field(64, ge=0, le=4096, description="Tokens the penalties look back.")
    repeat_guard: int = Field(
        4, ge=0, le=100, description="End an answer whose tail repeats this often (0: never)."
    )
    seed: int | None = Field(None, ge=0, lt=2**32, description="Seed for reproducible answers.")
    system_prompt: str | None = Field(None, description="System message for every conversation.")

    enable_thinking: bool = Field(
        False, description="Chat templates with a thinking switch (Qwen3): thinking on."
    )

    policy: PolicyName = Field(
        "auto",
        description="When to call the cloud (auto: learned for an SLM trained to call, else "
        "entropy).",
    )
    entropy_threshold: float | None = Field(
        None, gt=0,
        description="Entropy policy: nats to trigger (default: the SLM's calibration, else 4).",
    )  # fmt: skip
    random_p: float = Field(
        0.1, ge=0, le=1, description="Random router: chance the cloud answers a whole query."
    )
    policy_call_tokens: int = Field(16, ge=1, le=8192, description="N for entropy calls.")
    max_calls: int = Field(
        4,
        ge=0,
        le=1000,
        description="Calls per answer (4 = the method's 5 SLM turns); later commands are skipped.",
    )
    max_tokens: int = Field(512, ge=1, le=262144, description="Most tokens in one answer.")
    max_call_tokens: int = Field(8192, ge=1, description="Cap on N in one command.")

    cloud_url: str = Field("http://127.0.0.1:8300/v1", description="Cloud base URL.")
    cloud_key: SecretStr | None = Field(None, description="API key of the cloud endpoint.")
    cloud_model: str | None = Field(None, description="Cloud model (default: its first listed).")
    cloud_api: CloudApiName = Field(
        "auto",
        description="How a partial answer is continued: completions, chat-continue, chat-prefix, "
        "anthropic, chat; auto: by known host, else probed once and remembered.",
    )
    cloud_mode: Literal["raw", "chat"] | None = Field(
        None, description="Replaced by cloud_api (raw: completions, chat: chat-continue)."
    )
    clouds: list[CloudTarget] = Field(
        default_factory=list, description="Several clouds, tried in order ([[clouds]] tables)."
    )
    max_attempts: int = Field(
        4, ge=1, le=20, description="Requests one call may make, all clouds and retries together."
    )
    cloud_temperature: float = Field(0.7, ge=0, le=2, description="Cloud sampling temperature.")
    cloud_stop: list[str] = Field(default_factory=list, description="Stop markers for the cloud.")
    offline: bool = Field(False, description="Never touch the network.")

    connect_timeout_s: float = Field(3.0, gt=0, le=600, description="Cloud connect timeout.")
    first_token_timeout_s: float = Field(20.0, gt=0, le=600, description="Wait for a token.")
    total_timeout_s: float = Field(60.0, gt=0, le=3600, description="Whole-call timeout.")
    retries: int = Field(2, ge=0, le=10, description="Retries before the first token.")
    breaker_failures: int = Field(3, ge=1, le=100, description="Failures that open the breaker.")
    breaker_cooldown_s: float = Field(30.0, gt=0, le=3600, description="Breaker open time.")

    caps: CapSettings = Field(default_factory=CapSettings)
    prices: dict[str, Price] = Field(
        default_factory=dict, description="Per cloud model; a model not listed costs 0."
    )
    ledger_path: Path | None = Field(None, description="SQLite ledger (default: data dir).")

    max_context_tokens: int | None = Field(
        None, ge=1, description="Most context tokens that may leave the device per call."
    )
    audit_full_text: bool = Field(False, description="Audit log keeps the full text sent.")
    audit_path: Path | None = Field(None, description="Audit log (default: data dir).")
    max_waiting: int = Field(
        8, ge=0, le=1000, description="relay serve: requests that may wait for the SLM (then 429)."
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys relay serve accepts on /v1 (none: no key asked; loopback only).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return init_settings, env_settings, toml

    _url = field_validator("cloud_url")(http_url)

    @model_validator(mode="after")
    def _old_cloud_mode(self) -> EdgeSettings:
        if self.cloud_mode is not None and "cloud_api" not in self.model_fields_set:
            self.cloud_api = _OLD_MODES[self.cloud_mode]  # type: ignore[assignment]
        return self

    def notes(self) -> list[str]:
        """One line for each setting that still works but should be changed."""
        if self.cloud_mode is None:
            return []
        new = _OLD_MODES[self.cloud_mode]
        return [f'cloud_mode = "{self.cloud_mode}" is replaced by cloud_api = "{new}" '
                "(cloud_mode goes in the next release)"]  # fmt: skip

    def cloud_list(self) -> list[CloudTarget]:
        """The clouds to try, in order: ``clouds``, else the one of ``cloud_url``."""
        if self.clouds:
            return list(self.clouds)
        return [CloudTarget(url=self.cloud_url, key=self.cloud_key, model=self.cloud_model,
                              cloud_api=self.cloud_api)]  # fmt: skip

    def price_of(self, cloud: CloudTarget) -> Price:
        """The cloud's own prices, else those of its model, else free."""
        return cloud.prices or self.prices.get(cloud.model or "", Price())

    def resolved_ledger_path(self) -> Path:
        return self.ledger_path or data_dir() / "ledger.sqlite3"

    def resolved_audit_path(self) -> Path:
        return self.audit_path or data_dir() / "audit.jsonl"

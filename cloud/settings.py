"""Settings of the cloud endpoint (env prefix ``RELAYLLM_CLOUD_``; CLI flags map onto them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.llama.fields import CpuThreads, GpuLayers
from edge.openai_compat.server import is_loopback
from edge.openai_compat.serving import ServingSettings
from protocol.errors import SetupError

__all__ = ["CloudSettings"]


class CloudSettings(BaseSettings, ServingSettings):
    """Everything ``relay-cloud serve`` can be told (the limits on one answer:
    :class:`~edge.openai_compat.serving.ServingSettings`)."""

    model_config = SettingsConfigDict(env_prefix="RELAYLLM_CLOUD_", extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8300, ge=0, le=65535, description="Port to listen on (0: any free port).")
    engine: Literal["auto", "llama", "upstream", "expert"] = Field(
        "auto",
        description="llama (embedded GGUF), upstream (forward to --upstream-url), expert (the "
        "labelled stand-in that knows --problems); auto: upstream when a URL is set, else llama.",
    )
    problems: Path | None = Field(
        None, description="Expert engine: JSONL of known problems (or a dataset folder)."
    )
    expert_mode: Literal["faithful", "oracle"] = Field(
        "faithful",
        description="Expert engine: faithful (the next steps of the worked solution, at most "
        "max_tokens) or oracle (skips ahead so the boxed answer fits: a comparison-only check).",
    )
    model: str | None = Field(
        None, description="GGUF path for the embedded engine; unset serves the bundled cloud model."
    )
    model_id: str | None = Field(None, description="Name the model is served under.")
    n_ctx: int = Field(
        4096, ge=256, le=262144, description="Context window of the embedded engine."
    )
    n_threads: CpuThreads = None
    n_gpu_layers: GpuLayers = Field(
        "auto", description="Layers on the GPU: auto (all on a GPU build), a number, 0 or -1 (all)."
    )
    api_keys: list[SecretStr] = Field(default_factory=list, description="Accepted API keys.")
    api_keys_file: Path | None = Field(
        None, description="File with one API key per line, or (*.toml) named keys and limits."
    )
    tokens_per_day: int | None = Field(
        None, ge=0, description="Default per-key budget of tokens per UTC day (unset: none)."
    )
    requests_per_minute: int | None = Field(
        None, ge=0, description="Default per-key request rate over any minute (unset: none)."
    )
    state_url: SecretStr | None = Field(
        None, description="Usage store: sqlite:///PATH or postgresql://... (default: SQLite in "
        "the user data directory); secret, as it may hold a password.",
    )  # fmt: skip
    insecure_no_auth: bool = Field(
        False, description="Accept requests without a key (loopback only)."
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, le=1 << 30, description="Largest request body.")
    max_queue: int = Field(
        64, ge=1, le=100_000, description="Requests answered or waiting at once (then 429)."
    )
    prompt_slots: int = Field(
        4, ge=0, le=64, description="Embedded engine: conversations whose context is kept."
    )
    parallel: int | None = Field(
        None, ge=1, le=128,
        description="Embedded engine: answers generated at once, sharing the n_ctx context "
        "(default: n_ctx // 512, at most 8; 1 gives seeded answers reproducible text).",
    )  # fmt: skip
    upstream_url: str | None = Field(None, description="OpenAI-compatible base URL to forward to.")
    upstream_api_key: SecretStr | None = Field(None, description="Key for the upstream server.")
    upstream_model: str | None = Field(None, description="Upstream model (default: its first).")
    upstream_timeout_s: float = Field(120.0, gt=0, le=3600, description="Upstream request timeout.")

    @property
    def chosen_engine(self) -> str:
        """The engine to run, ``auto`` resolved."""
        if self.engine != "auto":
            return self.engine
        return "upstream" if self.upstream_url else "llama"

    @property
    def state_url_value(self) -> str | None:
        """The usage store's URL, in clear."""
        return self.state_url.get_secret_value() if self.state_url else None

    @model_validator(mode="after")
    def _check_engine(self) -> CloudSettings:
        if self.chosen_engine == "expert" and self.problems is None:
            raise ValueError(
                "the expert engine needs --problems FILE (written by relay-train data)"
            )
        if self.chosen_engine == "upstream" and not self.upstream_url:
            raise ValueError("the upstream engine needs --upstream-url")
        return self

    @model_validator(mode="after")
    def _check_auth(self) -> CloudSettings:
        if self.insecure_no_auth and not is_loopback(self.host):
            raise ValueError(
                f"insecure_no_auth is only allowed on a loopback host, not {self.host!r}; "
                "configure API keys instead"
            )
        if not (self.insecure_no_auth or self.api_keys or self.api_keys_file):
            raise ValueError(
                "no API keys configured: pass --api-key KEY (or RELAYLLM_CLOUD_API_KEYS, or "
                "--api-keys-file), or --insecure-no-auth for a demo on localhost"
            )
        return self

    def load_api_keys(self) -> tuple[str, ...]:
        """Keys from settings and the keys file (blank lines and ``#`` comments skipped)."""
        keys = [k.get_secret_value() for k in self.api_keys]
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                where = self.api_keys_file
                raise SetupError(f"cannot read the API keys file {where}: {exc}") from exc
            keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return tuple(keys)

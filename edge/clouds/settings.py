"""What the cloud client is told: a cloud to call, its prices and its caps.

:class:`CloudTarget` is one cloud of the device's ``[[clouds]]`` table;
:class:`Price` is what its tokens cost (the one price model, defined with the budgets in
:mod:`edge.reservations`) and :class:`CapSettings` what it may spend.
The device app's settings hold them (:class:`edge.app.settings.EdgeSettings`).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from edge.reservations import Price

__all__ = ["CapSettings", "CloudApiName", "CloudTarget", "Price", "http_url"]

CloudApiName = Literal["auto", "completions", "chat-continue", "chat-prefix", "anthropic", "chat"]


class CapSettings(BaseModel):
    """Cost caps; ``None`` means no cap."""

    tokens_per_answer: int | None = Field(None, ge=0, description="Cloud tokens in one answer.")
    tokens_per_day: int | None = Field(None, ge=0, description="Cloud tokens per UTC day.")
    tokens_per_month: int | None = Field(None, ge=0, description="Cloud tokens per UTC month.")
    usd_per_day: float | None = Field(None, ge=0, description="Dollars per UTC day.")
    usd_per_month: float | None = Field(None, ge=0, description="Dollars per UTC month.")


def http_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; a clear error otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{url!r} is not an http:// or https:// URL (e.g. https://api.openai.com/v1)"
        )
    return url


class CloudTarget(BaseModel):
    """One cloud of a ``[[clouds]]`` table; they are tried in order for every call."""

    model_config = ConfigDict(extra="forbid")
    _url = field_validator("url")(http_url)

    url: str = Field(description="Base URL (OpenAI-style ``…/v1``; Anthropic's host is enough).")
    name: str | None = Field(None, description="Name in events, ledger and stats (default: host).")
    key: SecretStr | None = Field(None, description="API key.")
    key_env: str | None = Field(
        None, description="Environment variable holding the key (default: the provider's own)."
    )
    model: str | None = Field(None, description="Model (default: the cloud's first listed).")
    cloud_api: CloudApiName = Field("auto", description="API family (auto: known host or probe).")
    prices: Price | None = Field(None, description="Per million tokens (default: prices[model]).")
    caps: CapSettings = Field(default_factory=CapSettings, description="This cloud's own caps.")
    temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        description="This cloud's sampling temperature (default: cloud_temperature).",
    )
    connect_timeout_s: float | None = Field(None, gt=0, le=600, description="Its connect timeout.")
    first_token_timeout_s: float | None = Field(
        None, gt=0, le=600, description="Its wait for a first token (a reasoning model's is long)."
    )
    total_timeout_s: float | None = Field(
        None, gt=0, le=3600, description="Its whole-call timeout."
    )
    retries: int | None = Field(None, ge=0, le=10, description="Its retries before a first token.")

    def options(self) -> dict[str, float | int]:
        """The client settings this cloud sets for itself (the global ones apply to the rest)."""
        own = ("temperature", "connect_timeout_s", "first_token_timeout_s", "total_timeout_s",
               "retries")  # fmt: skip
        return {name: getattr(self, name) for name in own if getattr(self, name) is not None}

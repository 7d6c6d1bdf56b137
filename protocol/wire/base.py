"""The base every wire model shares, the finish reasons and roles, and object ids."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["FinishReason", "Role", "WireModel", "new_id"]

FinishReason = Literal["stop", "length"]
Role = Literal["system", "user", "assistant"]


def new_id(prefix: str) -> str:
    """A fresh OpenAI-style object id such as ``cmpl-3f2a...``."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class WireModel(BaseModel):
    """Base of every wire model: ignore unknown fields, never mutate."""

    model_config = ConfigDict(extra="ignore", frozen=True)

"""Settings fields of each llama.cpp engine (the SLM's, relay-cloud's): threads, GPU layers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

__all__ = ["CpuThreads", "GpuLayers"]

CpuThreads = Annotated[
    int | None,
    Field(
        ge=1, le=512,
        description="CPU threads (default: the free physical performance cores, followed while "
        "decoding).",
    ),
]  # fmt: skip
"""llama.cpp's threads; unset: :func:`edge.llama.threads.performance_cores`, then followed."""

GpuLayers = Literal["auto"] | Annotated[int, Field(ge=-1, le=10000)]
"""Layers offloaded to a GPU: ``auto`` (all on a GPU build), a count, 0 or -1 (all)."""

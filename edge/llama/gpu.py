"""Which GPU the installed llama.cpp can use, and how many layers go on it.

llama-cpp-python is compiled for one backend set (CPU only, or with CUDA,
Metal, Vulkan, ...; see the README's install lines). ``n_gpu_layers`` is
``auto`` by default: every layer on the GPU when the build has a GPU backend,
none otherwise. A number asks for that many layers (``0``: CPU only); asked of
a CPU-only build it becomes 0 with a one-line note, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["GPU_BACKENDS", "GpuLayers", "GpuPlan", "gpu_backend", "plan_gpu_layers"]

GpuLayers = int | Literal["auto"]
GPU_BACKENDS = ("CUDA", "Metal", "Vulkan", "ROCm", "HIP", "SYCL", "MUSA", "CANN", "OpenCL")
"""Backend names as llama.cpp's system information spells them."""
ALL_LAYERS = -1
"""llama.cpp's "every layer" (any number at least the model's layer count does the same)."""


def gpu_backend() -> str:
    """The GPU backend the installed llama.cpp was built with, or ``CPU``."""
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return "CPU"
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return next((name for name in GPU_BACKENDS if f"{name} :" in info or name in info), "GPU")


@dataclass(frozen=True)
class GpuPlan:
    """What llama.cpp is asked for (``n_gpu_layers``), on which backend, and why."""

    backend: str
    n_gpu_layers: int
    note: str = ""

    def offloaded(self, layers: int) -> int:
        """How many of a model's ``layers`` (blocks and output) this plan puts on the GPU."""
        if self.backend == "CPU":
            return 0
        return layers if self.n_gpu_layers < 0 else min(layers, self.n_gpu_layers)


def plan_gpu_layers(asked: GpuLayers) -> GpuPlan:
    """``asked`` resolved against the installed build (see the module docstring)."""
    backend = gpu_backend()
    if asked == "auto":
        return GpuPlan(backend, 0 if backend == "CPU" else ALL_LAYERS)
    if asked != 0 and backend == "CPU":
        note = (
            f"{asked} GPU layers were asked for, but this llama.cpp build has no GPU backend: "
            "the model runs on the CPU (the README says how to install a GPU build)"
        )
        return GpuPlan(backend, 0, note)
    return GpuPlan(backend, asked)

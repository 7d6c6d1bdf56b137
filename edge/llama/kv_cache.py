"""The KV cache choices of a llama.cpp context: the types of its keys and values, and its size."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["KV_CACHE_TYPES", "ggml_types", "kv_cache_bytes"]

KV_CACHE_TYPES = {"q8_0": ("Q8_0", "Q8_0"), "q8_0/q4_0": ("Q8_0", "Q4_0"), "f16": ("F16", "F16")}
"""Cache choices: the llama.cpp types of the keys and of the values (``K/V``; one name: both)."""
_BYTES_PER_VALUE = {"F16": 2.0, "Q8_0": 34 / 32, "Q4_0": 18 / 32}  # blocks of 32 values


def ggml_types(kv_cache: str) -> tuple[int, int]:
    """llama.cpp's type ids of the keys and of the values for the choice ``kv_cache``."""
    import llama_cpp

    if kv_cache not in KV_CACHE_TYPES:
        raise ValueError(f"kv_cache must be one of {', '.join(KV_CACHE_TYPES)}, not {kv_cache}")
    type_k, type_v = (getattr(llama_cpp, f"GGML_TYPE_{t}") for t in KV_CACHE_TYPES[kv_cache])
    return type_k, type_v


def kv_cache_bytes(metadata: Mapping[str, str], n_ctx: int, kv_cache: str) -> int:
    """Memory of a KV cache of ``n_ctx`` positions for the model of GGUF ``metadata``."""
    arch = metadata.get("general.architecture", "llama")

    def number(key: str, default: int = 0) -> int:
        return int(metadata.get(f"{arch}.{key}", default))

    heads = number("attention.head_count", 1) or 1
    kv_dim = number("embedding_length") // heads * number("attention.head_count_kv", heads)
    per_position = sum(_BYTES_PER_VALUE[name] for name in KV_CACHE_TYPES[kv_cache])
    return int(number("block_count") * n_ctx * kv_dim * per_position)

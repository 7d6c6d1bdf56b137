"""The settings of a training run: one model, grouped, every field described and bounded.

A run is configured by a preset (``cpu-tiny``: the whole pipeline in minutes on
two cores, the test; ``cpu-small``: the README's figure, within an hour on two
cores; ``paper``: the method's recipe for a GPU), a TOML file on top, then
command-line overrides (``--set grpo.steps=20``). The resolved config is saved
with the run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["PRESETS", "RunConfig", "load_config"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    dataset: str = Field("builtin", description="builtin, a .jsonl file, or a dataset folder.")
    train_size: int = Field(400, ge=1, description="Training problems.")
    heldout_size: int = Field(60, ge=0, description="Held-out problems for the final check.")
    levels: list[int] = Field([1, 2, 3], description="Built-in problems: steps per problem.")


class CloudConfig(_Section):
    url: str | None = Field(
        None, description="Cloud endpoint (…/v1); unset starts relay-cloud's expert engine."
    )
    key: str | None = Field(None, description="API key of the cloud endpoint.")
    model: str | None = Field(None, description="Cloud model name (default: its first).")
    temperature: float = Field(0.7, ge=0, le=2, description="Cloud sampling temperature.")


class WarmupConfig(_Section):
    no_call_share: float = Field(0.3, ge=0, le=1, description="Examples that keep no call.")
    max_calls: int = Field(2, ge=1, le=8, description="Most commands in one example.")
    call_sizes: list[int] = Field([4, 8, 16, 32, 64], description="N of the inserted commands.")
    positions: Literal["errors", "random", "entropy"] = Field(
        "errors",
        description="Where calls go: errors (before each reference step whose number the SLM "
        "gets wrong, sized to that step), random, or entropy (where the SLM is least sure).",
    )
    answers: Literal["reference", "slm"] = Field("reference", description="Who writes answers.")


class LoraConfig(_Section):
    enabled: bool = Field(True, description="LoRA adapters; false trains every weight.")
    rank: int = Field(16, ge=1, le=1024, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="Adapter scale numerator.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Adapter dropout.")
    target_modules: str | list[str] = Field("all-linear", description="Modules to adapt.")


class SFTConfig(_Section):
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the warm-up data.")
    batch_size: int = Field(4, ge=1, description="Examples per device step.")
    grad_accum: int = Field(1, ge=1, description="Steps per optimizer update.")
    max_length: int = Field(512, ge=32, description="Longest example in tokens.")


class GRPOConfig(_Section):
    steps: int = Field(8, ge=1, description="Optimizer updates.")
    prompts_per_step: int = Field(4, ge=1, description="Prompts rolled out per update.")
    group_size: int = Field(4, ge=2, description="Rollouts per prompt (the method: 8).")
    learning_rate: float = Field(2e-5, gt=0, description="Learning rate (the method: 1e-6).")
    beta: float = Field(0.01, ge=0, description="KL coefficient.")
    epsilon: float = Field(0.2, gt=0, description="Clip range, low side.")
    epsilon_high: float = Field(0.3, gt=0, description="Clip range, high side.")
    max_tokens: int = Field(128, ge=8, description="Answer tokens per rollout (both models).")
    max_calls: int = Field(2, ge=0, description="Calls per rollout (2 = the method's 3 turns).")
    temperature: float = Field(1.0, gt=0, le=2, description="Rollout sampling temperature.")
    solo_reward: float = Field(1.5, description="Correct without a call, when possible.")
    stubborn_reward: float = Field(-1.0, description="Wrong without a call, when calling helped.")
    format_penalty: float = Field(0.0, ge=0, description="Subtracted per malformed command.")
    cost: Literal["tokens", "ratio"] = Field(
        "tokens", description="A call's cost: cloud tokens and calls, or the method's ratio."
    )
    token_cost: float = Field(0.01, ge=0, le=1, description="Cost per cloud token received.")
    call_cost: float = Field(0.05, ge=0, le=1, description="Cost per call.")
    skip_uninformative: bool = Field(
        True, description="Leave groups whose rewards are all equal out of the loss."
    )
    heldout_every: int = Field(
        0, ge=0, description="Held-out reward every this many steps (0: at start and end only)."
    )
    heldout_prompts: int = Field(
        16, ge=0, description="Held-out prompts for the reward curve (0: no curve)."
    )


class ExportConfig(_Section):
    quantization: str = Field("Q8_0", description="Quantization of model.gguf (F16 keeps f16).")
    parity_prompts: int = Field(5, ge=1, description="Prompts for the parity check.")
    parity_tokens: int = Field(32, ge=1, description="Greedy tokens per parity prompt.")


class RunConfig(_Section):
    """Everything a ``relay-train`` run can be told."""

    slm: str | None = Field(None, description="SLM: GGUF file or model folder (default: bundled).")
    seed: int = Field(0, ge=0, description="Seed for data, training and rollouts.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch.")
    data: DataConfig = DataConfig()
    cloud: CloudConfig = CloudConfig()
    warmup: WarmupConfig = WarmupConfig()
    lora: LoraConfig = LoraConfig()
    sft: SFTConfig = SFTConfig()
    grpo: GRPOConfig = GRPOConfig()
    export: ExportConfig = ExportConfig()

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if any(level not in (1, 2, 3, 4) for level in self.data.levels) or not self.data.levels:
            raise ValueError("data.levels must be among 1, 2, 3, 4")
        if any(size < 1 for size in self.warmup.call_sizes) or not self.warmup.call_sizes:
            raise ValueError("warmup.call_sizes must be positive numbers (a command always has N)")
        if self.grpo.epsilon_high < self.grpo.epsilon:
            raise ValueError("grpo.epsilon_high must be at least grpo.epsilon")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "cpu-tiny": {
        "data": {"train_size": 240, "heldout_size": 40, "levels": [1, 2]},
        "sft": {"epochs": 1.0, "batch_size": 4},
        "grpo": {"steps": 6, "prompts_per_step": 4, "group_size": 4, "max_tokens": 96},
        "export": {"parity_prompts": 3, "parity_tokens": 24},
    },
    "cpu-small": {
        "data": {"train_size": 400, "heldout_size": 40, "levels": [1, 2, 3]},
        "warmup": {"max_calls": 3},
        "sft": {"epochs": 2.0, "batch_size": 4},
        "grpo": {"steps": 24, "prompts_per_step": 4, "group_size": 4, "max_tokens": 128,
                 "heldout_every": 8, "heldout_prompts": 24},
        "export": {"parity_prompts": 3, "parity_tokens": 24},
    },
    "paper": {
        "slm": "Qwen/Qwen3-1.7B",
        "device": "cuda",
        "data": {"train_size": 17000, "heldout_size": 500, "levels": [1, 2, 3, 4]},
        "lora": {"enabled": False},
        "sft": {"learning_rate": 2e-5, "batch_size": 2, "grad_accum": 16, "max_length": 4096},
        "grpo": {"steps": 130, "prompts_per_step": 128, "group_size": 8, "learning_rate": 1e-6,
                 "max_tokens": 8192, "max_calls": 2},
    },
}  # fmt: skip


def load_config(
    preset: str | None = None, file: Path | None = None, overrides: list[str] | None = None
) -> RunConfig:
    """A preset, then a TOML file, then ``section.field=value`` overrides (TOML values)."""
    data: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        _merge(data, PRESETS[preset])
    if file is not None:
        _merge(data, tomllib.loads(file.read_text(encoding="utf-8")))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"an override is section.field=value, not {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        target = data
        *path, last = key.strip().split(".")
        for part in path:
            target = target.setdefault(part, {})
        target[last] = value
    return RunConfig.model_validate(data)


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value.copy() if isinstance(value, dict | list) else value

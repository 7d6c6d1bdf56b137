"""What training runs share: metrics as JSON lines, a plot of them, checkpoints, devices, LoRA.

Every logged step of SFT and GRPO becomes one JSON line in ``metrics.jsonl``
(``stage``, ``step`` and the trainer's figures); :func:`plot` draws the GRPO
figures people look at (reward, call rate, accuracy) per step into a PNG.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from training.config import LoraConfig, RunConfig

__all__ = ["MetricsLog", "last_checkpoint", "lora_config", "plot", "trainer_args"]


class MetricsLog:
    """Appends JSON lines to ``path``; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, stage: str, step: int, **figures: Any) -> None:
        record = {"stage": stage, "step": step, "time": time.time(), **figures}
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def read(self, stage: str | None = None) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if stage is None or r["stage"] == stage]

    def callback(self, stage: str) -> Any:
        """A transformers ``TrainerCallback`` that logs every trainer log line here."""
        from transformers import TrainerCallback

        log = self

        class _Logged(TrainerCallback):  # type: ignore[misc]
            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any
            ) -> None:
                numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
                log.write(stage, state.global_step, **numbers)

        return _Logged()


def last_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` folder under ``folder``, to resume from."""
    found = [p for p in folder.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    return str(max(found, key=lambda p: int(p.name.split("-")[1]))) if found else None


def lora_config(settings: LoraConfig) -> Any:
    """peft's LoRA settings, or ``None`` for full fine-tuning."""
    if not settings.enabled:
        return None
    from peft import LoraConfig as PeftLora

    return PeftLora(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )


def trainer_args(config: RunConfig, *, save_steps: int) -> dict[str, Any]:
    """Trainer arguments every stage shares: the method's AdamW settings, a log line per step,
    one checkpoint kept (to resume from), fixed seeds, and the device (bf16 on a GPU, float32
    on a CPU)."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    return {
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        "gradient_checkpointing": False,  # small models: recomputing costs more than it saves
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": 1,
        "report_to": [],
        "seed": config.seed,
        "data_seed": config.seed,
        # On a CPU, float32: bf16 autocast (TRL's default) falls back to a naive matrix
        # product on CPUs without bf16 instructions, twenty times slower.
        **({"bf16": True} if cuda else {"use_cpu": True, "bf16": False, "fp16": False}),
    }


GRPO_FIGURES = {
    "reward": "reward (mean)",
    "relay/accuracy": "accuracy",
    "relay/call_rate": "answers that called",
    "relay/call_ratio": "cloud share of tokens",
}


def plot(log: MetricsLog, out: Path) -> Path | None:
    """Reward, accuracy and call rates per GRPO step as a PNG; ``None`` without GRPO steps."""
    merged: dict[int, dict[str, Any]] = {}
    for row in log.read("grpo"):
        merged.setdefault(row["step"], {}).update(row)
    rows = [merged[step] for step in sorted(merged) if "reward" in merged[step]]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    held = sorted(log.read("grpo_heldout"), key=lambda r: r["step"])
    figure, axes = plt.subplots(1, 3 if held else 2, figsize=(15 if held else 10, 3.8))
    steps = [r["step"] for r in rows]
    axes[0].plot(steps, [r["reward"] for r in rows], marker="o", label=GRPO_FIGURES["reward"])
    axes[0].set(xlabel="GRPO step", ylabel="reward", title="Reward")
    for key in ("relay/accuracy", "relay/call_rate", "relay/call_ratio"):
        axes[1].plot(steps, [r.get(key, float("nan")) for r in rows], marker="o",
                     label=GRPO_FIGURES[key])  # fmt: skip
    axes[1].set(xlabel="GRPO step", ylim=(0, 1), title="Accuracy and calls")
    if held:
        x = [r["step"] for r in held]
        axes[2].fill_between(x, [r["reward_low"] for r in held], [r["reward_high"] for r in held],
                             alpha=0.25, label="95 % interval")  # fmt: skip
        axes[2].plot(x, [r["reward"] for r in held], marker="o", label="held-out reward")
        last = held[-1]
        gain = (f"\nlast vs warm-up: {last['gain']:+.3f} (paired 95 %: {last['gain_low']:+.3f} "
                f"to {last['gain_high']:+.3f})" if "gain" in last else "")  # fmt: skip
        axes[2].set(xlabel="GRPO step (0: the warm-up model)", title=f"Held-out reward{gain}")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out

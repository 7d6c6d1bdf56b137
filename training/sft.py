"""SFT warm-up: LoRA (or full) fine-tuning on the warm-up examples with TRL's SFTTrainer.

Examples arrive tokenized, with labels that are ``-100`` on the prompt and on
the cloud's tokens (:mod:`training.warmup`), so only the SLM's own text and
its commands are learned. After training the adapter is merged into the
weights and the model saved as a plain Hugging Face folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import RunConfig
from training.metrics import MetricsLog, last_checkpoint, lora_config, trainer_args
from training.models import LoadedSLM
from training.warmup import WarmupExample

__all__ = ["train_sft"]


def train_sft(
    slm: LoadedSLM,
    examples: list[WarmupExample],
    out: Path,
    config: RunConfig,
    *,
    metrics: MetricsLog | None = None,
    max_steps: int | None = None,
) -> Path:
    """Fine-tune ``slm`` on ``examples``; return the folder of the merged model."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    settings = config.sft
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    args = SFTConfig(
        output_dir=str(out / "checkpoints"),
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        max_length=settings.max_length,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        **trainer_args(config, save_steps=25),
    )
    trainer = SFTTrainer(
        model=slm.model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=slm.tokenizer,
        peft_config=lora_config(config.lora),
        callbacks=[metrics.callback("sft")] if metrics else None,
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(out / "checkpoints"))
    return save_merged(trainer.model, slm.tokenizer, out / "model")


def save_merged(model: Any, tokenizer: Any, folder: Path) -> Path:
    """Merge LoRA adapters (if any) into the weights and save model and tokenizer."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

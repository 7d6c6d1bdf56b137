"""Training for the relay SLM: SFT warm-up, GRPO with relay rollouts, merge and GGUF export.

Installed with the ``train`` extra (torch, transformers, peft, trl).
"""

__all__: list[str] = []

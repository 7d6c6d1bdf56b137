"""Training the SLM to call: data, SFT warm-up, GRPO on real relay rollouts, GGUF export.

Installed with the ``train`` extra (torch, transformers, peft, trl). Rollouts
run through the edge's own relay loop (:mod:`edge.relay`) on the transformers
backend (:mod:`training.hf_backend`), so training sees exactly the sequences
inference produces.
"""

__all__: list[str] = []

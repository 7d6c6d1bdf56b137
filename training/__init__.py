"""Training the SLM to call: data, SFT warm-up, GRPO on real relay rollouts, GGUF export;
and the evaluation that measures what each cloud token buys.

Installed with the ``train`` extra (torch, transformers, peft, trl). Rollouts
run through the edge's own relay loop (:mod:`edge.core.relay`) on the transformers
backend (:mod:`training.hf_backend`), so training sees exactly the sequences
inference produces. Importing this package loads none of the heavy libraries.
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "training.grading": ["Grade", "grade"],
        "training.problems": ["PROMPT_SUFFIX", "SPLITS", "Problem", "generate", "load_problems"],
        "training.reward": ["RewardWeights", "relay_rewards"],
    },
)

"""Training the SLM to call: data, SFT warm-up, GRPO on real relay rollouts, GGUF export;
and the evaluation that measures what each cloud token buys.

Installed with the ``train`` extra (torch, transformers, peft, trl). Rollouts
run through the edge's own relay loop (:mod:`edge.relay`) on the transformers
backend (:mod:`training.hf_backend`), so training sees exactly the sequences
inference produces. Importing this package loads none of the heavy libraries.
"""

from training.grading import Grade, grade
from training.problems import PROMPT_SUFFIX, Problem, generate, load_problems
from training.reward import RewardWeights, relay_rewards

__all__ = [
    "PROMPT_SUFFIX",
    "Grade",
    "Problem",
    "RewardWeights",
    "generate",
    "grade",
    "load_problems",
    "relay_rewards",
]

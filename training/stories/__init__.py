"""Story families the built-in problem generator writes from, one set per split.

``train`` holds the families training sees; ``unseen`` holds families with
their own stories and sentences, kept for evaluation only, so a result on
them says how far what was learned carries to problems never seen. Each
family writes one problem of a given level (its number of steps) into a
:class:`~training.stories.writer.Story`.
"""

from training.stories.train_families import TRAIN_FAMILIES
from training.stories.unseen_families import UNSEEN_FAMILIES
from training.stories.writer import Family, Story

__all__ = ["FAMILIES", "SPLITS", "Family", "Story"]

FAMILIES: dict[str, tuple[Family, ...]] = {"train": TRAIN_FAMILIES, "unseen": UNSEEN_FAMILIES}
"""The story families of each split."""

SPLITS = tuple(FAMILIES)
"""The splits of the built-in problems: ``train`` and ``unseen``."""

"""The difficulty-aware reward: every case, judged per prompt group."""

from __future__ import annotations

import pytest

from training.reward import RewardWeights, relay_rewards


def test_someone_solved_it_alone() -> None:
    # correct & no call 1.5; correct & called 1 - rho; wrong 0 (called or not)
    rewards = relay_rewards([True, True, False, False], [0.0, 0.25, 0.5, 0.0], 4)
    assert rewards == [1.5, 0.75, 0.0, 0.0]


def test_only_callers_solved_it() -> None:
    # correct & called 1 - rho; wrong & no call -1; wrong & called 0
    rewards = relay_rewards([True, False, False, False], [0.2, 0.0, 0.3, 0.0], 4)
    assert rewards == pytest.approx([0.8, -1.0, 0.0, -1.0])


def test_nobody_solved_it() -> None:
    # a call earns rho (asking was right), no call 0
    rewards = relay_rewards([False, False, False], [0.4, 0.0, 0.1], 3)
    assert rewards == pytest.approx([0.4, 0.0, 0.1])


def test_each_group_is_judged_on_its_own() -> None:
    correct = [True, False, False, False, True, False]
    ratio = [0.0, 0.0, 0.0, 0.0, 0.5, 0.0]
    # group 1: solved alone -> case 1; group 2: a caller solved it -> case 2 (not case 1)
    assert relay_rewards(correct, ratio, 3) == [1.5, 0.0, 0.0, -1.0, 0.5, -1.0]


def test_weights_and_format_penalty() -> None:
    weights = RewardWeights(solo=2.0, stubborn=-0.5, format_penalty=0.25)
    rewards = relay_rewards([True, False], [0.0, 0.0], 2, weights=weights, malformed=[0, 2])
    assert rewards == [2.0, -0.5]
    rewards = relay_rewards([False, True], [0.0, 0.5], 2, weights=weights, malformed=[1, 0])
    assert rewards == [-0.75, 0.5]


@pytest.mark.parametrize(
    ("correct", "ratio", "size"),
    [([True] * 3, [0.0] * 3, 2), ([True], [0.0, 0.1], 1), ([True], [1.5], 1), ([True], [0.0], 0)],
)
def test_bad_batches_are_refused(correct: list[bool], ratio: list[float], size: int) -> None:
    with pytest.raises(ValueError, match=r"groups|ratios"):
        relay_rewards(correct, ratio, size)

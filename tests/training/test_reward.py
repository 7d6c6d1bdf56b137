"""The difficulty-aware reward: every case, judged per prompt group, with the cost in cloud
tokens (or the method's ratio), and which groups teach anything."""

from __future__ import annotations

import pytest

from training.reward import AnswerCost, RewardWeights, informative_groups, relay_rewards

RATIO = RewardWeights(cost="ratio")


def ratios(*values: float) -> list[AnswerCost]:
    """Answers whose cost is their ratio (10 cloud tokens when they called)."""
    return [AnswerCost(10 if r else 0, 1 if r else 0, r) for r in values]


def test_someone_solved_it_alone() -> None:
    # correct & no call 1.5; correct & called 1 - cost; wrong 0 (called or not)
    rewards = relay_rewards([True, True, False, False], ratios(0.0, 0.25, 0.5, 0.0), 4,
                            weights=RATIO)  # fmt: skip
    assert rewards == [1.5, 0.75, 0.0, 0.0]


def test_only_callers_solved_it() -> None:
    # correct & called 1 - cost; wrong & no call -1; wrong & called 0
    rewards = relay_rewards([True, False, False, False], ratios(0.2, 0.0, 0.3, 0.0), 4,
                            weights=RATIO)  # fmt: skip
    assert rewards == pytest.approx([0.8, -1.0, 0.0, -1.0])


def test_nobody_solved_it() -> None:
    # a call earns its cost (asking was right), no call 0
    rewards = relay_rewards([False, False, False], ratios(0.4, 0.0, 0.1), 3, weights=RATIO)
    assert rewards == pytest.approx([0.4, 0.0, 0.1])


def test_each_group_is_judged_on_its_own() -> None:
    correct = [True, False, False, False, True, False]
    costs = ratios(0.0, 0.0, 0.0, 0.0, 0.5, 0.0)
    # group 1: solved alone -> case 1; group 2: a caller solved it -> case 2 (not case 1)
    assert relay_rewards(correct, costs, 3, weights=RATIO) == [1.5, 0.0, 0.0, -1.0, 0.5, -1.0]


def test_the_cost_is_cloud_tokens_and_calls_not_the_share_of_the_answer() -> None:
    weights = RewardWeights(token_cost=0.01, call_cost=0.05)
    # The same 8 cloud tokens in one call cost the same in a short and in a long answer ...
    short, long = AnswerCost(8, 1, 8 / 20), AnswerCost(8, 1, 8 / 200)
    rewards = relay_rewards([True, True], [short, long], 2, weights=weights)
    assert rewards == pytest.approx([1 - 0.13, 1 - 0.13])
    # ... which the method's ratio would pay the longer answer for.
    by_ratio = relay_rewards([True, True], [short, long], 2, weights=RATIO)
    assert by_ratio[1] > by_ratio[0]
    # Two calls for the same tokens cost one call more; the cost stops at 1.
    split, huge = AnswerCost(8, 2, 0.4), AnswerCost(500, 1, 0.9)
    assert relay_rewards([True, True], [split, huge], 2, weights=weights) == pytest.approx(
        [1 - 0.18, 0.0]
    )


def test_weights_and_format_penalty() -> None:
    weights = RewardWeights(solo=2.0, stubborn=-0.5, format_penalty=0.25, cost="ratio")
    rewards = relay_rewards([True, False], ratios(0.0, 0.0), 2, weights=weights, malformed=[0, 2])
    assert rewards == [2.0, -0.5]
    rewards = relay_rewards([False, True], ratios(0.0, 0.5), 2, weights=weights, malformed=[1, 0])
    assert rewards == [-0.75, 0.5]


def test_groups_of_equal_rewards_teach_nothing() -> None:
    assert informative_groups([1.5, 1.5, 0.0, -1.0, 0.0, 0.0, 0.3, 0.0], 2) == [
        False, True, False, True,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("correct", "costs", "size"),
    [
        ([True] * 3, ratios(0.0, 0.0, 0.0), 2),
        ([True], ratios(0.0, 0.1), 1),
        ([True], [AnswerCost(3, 1, 1.5)], 1),
        ([True], [AnswerCost(-1, 0, 0.0)], 1),
        ([True], ratios(0.0), 0),
    ],
)
def test_bad_batches_are_refused(correct: list[bool], costs: list[AnswerCost], size: int) -> None:
    with pytest.raises(ValueError, match=r"groups|ratios"):
        relay_rewards(correct, costs, size)

"""The held-out reward's intervals: per point over prompts, and the paired gain over the warm-up."""

from __future__ import annotations

import pytest

from training.heldout_reward import mean_interval, paired_gain


def test_a_steady_gain_on_prompts_of_every_difficulty_is_outside_its_noise() -> None:
    before = [0.0, 0.1, 0.9, 0.2, 1.0, 0.4, 0.05, 0.7] * 3  # prompts differ far more than models
    after = [r + 0.05 for r in before]
    _, low, high = mean_interval(after)
    assert low < sum(before) / len(before) < high  # apart, each point's interval hides the gain
    gain, gain_low, gain_high = paired_gain(after, before)
    assert gain == pytest.approx(0.05)
    assert 0 < gain_low <= gain <= gain_high  # paired, the same gain is beyond noise


def test_a_gain_on_some_prompts_and_a_loss_on_others_is_within_its_noise() -> None:
    before = [0.5] * 12
    after = [0.9, 0.1] * 6
    gain, low, high = paired_gain(after, before)
    assert gain == pytest.approx(0.0)
    assert low < 0 < high


def test_a_gain_needs_the_same_prompts() -> None:
    with pytest.raises(ValueError, match="same prompts"):
        paired_gain([0.1, 0.2], [0.1])

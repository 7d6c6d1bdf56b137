"""The vectorised draw from the whole vocabulary: the right distribution, seeded, never a
token that has no probability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.llama import LlamaModel
from edge.llama.sampler import BLOCK, FullDraw
from protocol.sampling import SamplingParams


def frequencies(draw: FullDraw, logits: np.ndarray, n: int) -> np.ndarray:
    return np.bincount([draw(logits) for _ in range(n)], minlength=len(logits)) / n


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_draws_follow_the_softmax_at_the_temperature(temperature: float) -> None:
    logits = np.array([0.0, 1.0, 2.0, -np.inf, 0.5, -1.0], dtype=np.float32)
    expected = np.exp((logits - logits.max()) / temperature)
    expected /= expected.sum()
    seen = frequencies(FullDraw(len(logits), temperature, seed=1), logits, 40_000)
    assert seen[3] == 0.0  # a token at -inf is never drawn
    # 40,000 draws: a frequency's standard error is at most 0.0025
    assert np.abs(seen - expected).max() < 0.012


def test_tokens_across_blocks_and_the_last_one_are_drawn() -> None:
    n_vocab = 3 * BLOCK + 7  # the last block is padded
    logits = np.full(n_vocab, -np.inf, dtype=np.float32)
    chosen = [0, BLOCK - 1, BLOCK, 2 * BLOCK + 5, n_vocab - 1]
    logits[chosen] = 0.0
    seen = frequencies(FullDraw(n_vocab, 1.0, seed=3), logits, 5_000)
    assert set(np.flatnonzero(seen)) == set(chosen)
    assert np.abs(seen[chosen] - 0.2).max() < 0.03


def test_the_same_seed_draws_the_same_tokens() -> None:
    logits = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 4

    def tokens(seed: int) -> list[int]:
        draw = FullDraw(1000, 1.0, seed=seed)
        return [draw(logits) for _ in range(50)]

    assert tokens(7) == tokens(7)
    assert tokens(7) != tokens(8)


def test_temperature_zero_takes_the_first_most_likely_token() -> None:
    logits = np.array([1.0, 3.0, 3.0, 2.0], dtype=np.float32)
    assert FullDraw(4, 0.0, seed=None)(logits) == 1


def test_a_nan_logit_falls_back_to_the_most_likely_token() -> None:
    logits = np.array([1.0, np.nan, 5.0, 2.0], dtype=np.float32)
    assert FullDraw(4, 1.0, seed=0)(logits) == 2


def test_the_model_draws_from_its_own_logits(slm_path: Path) -> None:
    model = LlamaModel(slm_path, n_ctx=256, n_threads=2)
    try:
        prompt = model.tokenize("The capital of France is")
        model.sync(prompt)
        logits = np.ctypeslib.as_array(
            model.llama._ctx.get_logits_ith(-1), shape=(model.llama.n_vocab(),)
        ).copy()
        greedy = model.sampler(SamplingParams(temperature=0.0))
        assert greedy.sample() == int(np.argmax(logits))
        # a cold temperature keeps nearly all the mass on the most likely token
        cold = [model.sampler(SamplingParams(temperature=0.05, seed=s)).sample() for s in range(5)]
        assert cold == [int(np.argmax(logits))] * 5
        seeded = [model.sampler(SamplingParams(seed=4)).sample() for _ in range(3)]
        assert len(set(seeded)) == 1
    finally:
        model.close()

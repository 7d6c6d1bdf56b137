"""A policy that ignores the SLM's commands keeps it from writing them (``quiet_commands``)."""

from __future__ import annotations

from edge.core.policies import QUIET_BIAS, quiet_commands
from edge.llama import LlamaModel
from protocol.calls import CALL_OPEN
from protocol.sampling import SamplingParams


def _greedy_next(slm: LlamaModel, text: str, bias: tuple[tuple[int, float], ...]) -> int:
    slm.sync(slm.tokenize(text))
    sampler = slm.sampler(SamplingParams(temperature=0.0, logit_bias=bias))
    try:
        return sampler.sample()
    finally:
        sampler.close()


def test_quiet_commands_bias_the_tokens_a_command_starts_with(slm: LlamaModel) -> None:
    quiet = quiet_commands(slm)
    starts = {slm.tokenize(CALL_OPEN)[0], slm.tokenize(f" {CALL_OPEN}")[0]}
    assert {token for token, _ in quiet} == starts
    assert {bias for _, bias in quiet} == {QUIET_BIAS}


def test_a_quiet_slm_does_not_start_the_command_it_would_write(slm: LlamaModel) -> None:
    text = "Commands: " + " ".join(["<call>8</call>"] * 6)  # the next one is all but certain
    starts = {token for token, _ in quiet_commands(slm)}
    assert _greedy_next(slm, text, ()) in starts
    assert _greedy_next(slm, text, quiet_commands(slm)) not in starts

"""How soon the SLM writes again after the cloud's last byte.

``resume_latency_ms_p50``: time from the last piece of a 64-token cloud answer
(streamed a word every 20 ms, about 65 tokens a second) to the SLM's next token.
``resume_vs_token_ratio``: that latency / the median time of one SLM token in the
same answers. Cloud tokens are evaluated while they stream, so only the last
piece's are left when the stream ends: here the word " first," (2 tokens).
``resume_vs_token_ratio_token_stream``: the same when the answer arrives a token
per event at the same rate, as relay-cloud, llama.cpp's server and vLLM send it.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterator

from edge.core.cloud import CloudEnd, CloudItem, CloudRequest, CloudText
from edge.core.loop import RelayLoop
from edge.core.policies import LearnedPolicy
from edge.core.prompt import build_prompt
from edge.core.relay import RelayLimits
from edge.llama import LlamaChat, LlamaModel
from protocol.sampling import SamplingParams

__all__ = ["resume_latency"]

ANSWER = (
    " Light from the sun is made of many colours. As it passes through the air, the short"
    " blue waves are scattered by the molecules of nitrogen and oxygen much more than the"
    " long red waves, so blue light reaches our eyes from every part of the sky. There are"
    " three more things worth knowing about it: first,"
)
"""Ends mid-sentence, so the SLM always has more to write."""


class StreamingCloud:
    """Streams ``pieces`` of ``ANSWER``, ``gap_s`` apart; notes when the last one left."""

    def __init__(self, pieces: list[str], gap_s: float) -> None:
        self.pieces, self.gap_s = pieces, gap_s
        self.last_piece = 0.0

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        for piece in self.pieces:
            time.sleep(self.gap_s)
            self.last_piece = time.perf_counter()
            yield CloudText(piece)
        yield CloudEnd(outcome="ok", finish_reason="length", completion_tokens=len(self.pieces))


class TimedSampler:
    def __init__(self, inner: object, times: list[float]) -> None:
        self.inner, self.times = inner, times

    def sample(self) -> int:
        token = self.inner.sample()  # type: ignore[attr-defined]
        self.times.append(time.perf_counter())
        return token

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


class TimedModel:
    """The SLM, with the moment of every sampled token written down."""

    def __init__(self, model: LlamaModel) -> None:
        self.model, self.times = model, []  # type: list[float]

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)

    @property
    def n_ctx(self) -> int:
        return self.model.n_ctx

    def sampler(self, params: SamplingParams) -> TimedSampler:
        return TimedSampler(self.model.sampler(params), self.times)


def resume_latency(
    model: LlamaModel, answers: int, gap_s: float = 0.02, *, per_token: bool = False
) -> tuple[float, float]:
    """(median resume latency in ms, that / the median SLM token time); the answer streams
    a word per piece, or a token per piece (``per_token``, at the same rate)."""
    pieces = [" " + word for word in ANSWER.split(" ")[1:]]
    if per_token:
        tokens = model.tokenize(ANSWER)
        gap_s *= len(pieces) / len(tokens)
        pieces = [model.detokenize([token]).decode() for token in tokens]
    timed, cloud = TimedModel(model), StreamingCloud(pieces, gap_s)
    greedy = SamplingParams(temperature=0.0)
    loop = RelayLoop(timed, cloud, LearnedPolicy(), sampling=greedy,  # type: ignore[arg-type]
                     limits=RelayLimits(max_tokens=160))  # fmt: skip
    question = [{"role": "user", "content": "Why is the sky blue?"}]
    prompt = build_prompt(LlamaChat(model), question, n_ctx=model.n_ctx)
    resumes, token_times = [], []
    for _ in range(answers):
        timed.times.clear()
        list(loop.run(prompt, prefix="Here is why:<call>64</call>"))
        after = [t for t in timed.times if t > cloud.last_piece]
        if len(after) >= 3:
            resumes.append((after[0] - cloud.last_piece) * 1000)
            token_times += [(b - a) * 1000 for a, b in itertools.pairwise(after[1:])]
    resume = statistics.median(resumes)
    return resume, resume / statistics.median(token_times)

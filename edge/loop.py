"""The relay loop on one local model: :class:`RelayLoop` drives one answer at a time.

It owns the model and the cloud client and answers the steps of
:class:`edge.relay.RelayAnswer`: context edits go to the model, samples and
entropies come from it, calls go to the cloud, and events go to the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from edge.client import CloudClient
from edge.local_model import LocalModel
from edge.policies import CallPolicy
from edge.prompt import RelayPrompt
from edge.record import AnswerRecord
from edge.relay import ENTROPY, SAMPLE, CallCloud, Extend, RelayAnswer, RelayLimits, Rewind
from protocol.events import RelayEvent
from protocol.sampling import SamplingParams

__all__ = ["RelayLoop"]


class RelayLoop:
    """Answers prompts with one :class:`LocalModel`, calling ``cloud`` as ``policy`` decides.

    ``record`` is the latest answer's :class:`AnswerRecord`.
    """

    def __init__(
        self,
        model: LocalModel,
        cloud: CloudClient,
        policy: CallPolicy,
        *,
        limits: RelayLimits = RelayLimits(),
        sampling: SamplingParams = SamplingParams(temperature=0.7),
    ) -> None:
        self.model, self.cloud, self.policy = model, cloud, policy
        self.limits, self.sampling = limits, sampling
        self.record: AnswerRecord | None = None

    def run(
        self,
        prompt: RelayPrompt,
        *,
        prefix: str = "",
        seed: int | None = None,
        sampling: SamplingParams | None = None,
        limits: RelayLimits | None = None,
    ) -> Iterator[RelayEvent]:
        """Answer ``prompt``; ``prefix`` is answer text taken as the SLM's own (commands act).

        ``seed`` (default: the sampling seed) seeds the SLM and, per call, the cloud;
        ``sampling`` and ``limits`` replace the loop's own for this answer.
        """
        sampling = sampling or self.sampling
        seed = sampling.seed if seed is None else seed
        answer = RelayAnswer(prompt, self.model, self.policy, limits=limits or self.limits,
                             n_ctx=self.model.n_ctx, seed=seed, prefix=prefix)  # fmt: skip
        self.record = answer.record
        self.model.sync(prompt.tokens, exact=seed is not None)
        sampler = self.model.sampler(replace(sampling, seed=seed))
        steps = answer.steps()
        try:
            reply = None
            while (step := steps.send(reply)) is not None:
                reply = None
                if isinstance(step, Extend):
                    self.model.eval(step.tokens)
                elif step is SAMPLE:
                    reply = sampler.sample()
                elif step is ENTROPY:
                    reply = self.model.next_token_entropy()
                elif isinstance(step, CallCloud):
                    reply = self.cloud.stream(step.request)
                elif isinstance(step, Rewind):
                    self.model.rewind(step.n)
                else:
                    yield step  # type: ignore[misc]
        except StopIteration:
            return
        finally:
            steps.close()
            sampler.close()

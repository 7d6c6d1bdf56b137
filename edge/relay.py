"""The relay loop: the SLM decodes, the cloud fills in where asked, one answer at a time.

Read top to bottom:

1. The conversation is rendered with the SLM's chat template and synced into
   its KV cache (earlier turns are re-used, not re-read).
2. The SLM samples token by token. Its text goes through a :class:`CallScanner`,
   so commands are never shown as answer text. The policy may ask for a call
   when the SLM completes a command, or before any token.
3. A call sends the prompt plus the answer so far, with every command removed,
   to the cloud for at most ``min(N, tokens left)`` tokens. Cloud text streams
   out as it arrives, then is tokenized on its own and appended to the SLM's
   context: only those new tokens are evaluated. Cloud text is never scanned
   for commands.
4. ``finish_reason="stop"`` from the cloud ends the answer; ``length`` (or a
   fallback) hands control back to the SLM.

Every step is a :mod:`protocol.events` event. ``answer_tokens`` and
``answer_mask`` record the answer as the SLM saw it: mask 1 for tokens the SLM
sampled, 0 for spliced cloud tokens (the training mask).
"""

from __future__ import annotations

import codecs
import time
import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edge.chat_template import render_chat
from edge.cloud import CloudBudget, CloudClient, CloudEnd, CloudRequest, CloudText
from edge.llama_model import SamplingParams
from edge.policies import CallPolicy, PolicyState
from protocol.calls import DEFAULT_MAX_CALL_TOKENS, CallScanner, strip_calls
from protocol.events import (
    BudgetEvent,
    CallFinished,
    CallStarted,
    DoneEvent,
    FallbackEvent,
    RelayEvent,
    TextEvent,
)
from protocol.wire import ChatMessage, FinishReason

__all__ = ["LocalModel", "RelayLimits", "RelayLoop", "TokenSampler"]

_Steps = Generator[RelayEvent, None, bool]


class TokenSampler(Protocol):
    def sample(self) -> int: ...

    def close(self) -> None: ...


class LocalModel(Protocol):
    """What the loop needs of the SLM (llama.cpp on the edge, torch in training)."""

    @property
    def n_ctx(self) -> int: ...

    @property
    def metadata(self) -> dict[str, str]: ...

    def tokenize(self, text: str) -> list[int]: ...

    def tokenize_prompt(self, text: str) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> bytes: ...

    def special_token_text(self, which: str) -> str: ...

    def is_end_of_generation(self, token: int) -> bool: ...

    def sync(self, tokens: Sequence[int]) -> int: ...

    def eval(self, tokens: Sequence[int]) -> None: ...

    def sampler(self, params: SamplingParams) -> TokenSampler: ...

    def next_token_entropy(self) -> float: ...


@dataclass(frozen=True)
class RelayLimits:
    max_calls: int = 5
    max_tokens: int = 8192
    max_call_tokens: int = DEFAULT_MAX_CALL_TOKENS


class RelayLoop:
    """Answers conversations with ``model``, calling ``cloud`` as ``policy`` decides."""

    def __init__(
        self,
        model: LocalModel,
        cloud: CloudClient,
        policy: CallPolicy,
        *,
        limits: RelayLimits = RelayLimits(),
        sampling: SamplingParams = SamplingParams(temperature=0.7),
    ) -> None:
        self.model = model
        self.cloud = cloud
        self.policy = policy
        self.limits = limits
        self.sampling = sampling
        self.answer_tokens: list[int] = []
        self.answer_mask: list[int] = []

    def run(
        self, messages: Sequence[Mapping[str, str]], *, prefix: str = ""
    ) -> Iterator[RelayEvent]:
        """Answer ``messages``. ``prefix`` is answer text taken as the SLM's own (commands act)."""
        self._start(messages)
        sampler = self.model.sampler(self.sampling)
        try:
            finish = yield from self._decode(sampler, prefix)
        finally:
            sampler.close()
        yield DoneEvent(
            finish_reason=finish,
            prompt_tokens=self._prompt_len,
            slm_tokens=self._slm_tokens,
            llm_tokens=len(self.answer_tokens) - self._slm_tokens,
            calls=self._calls,
            cost_usd=self._cost,
            wall_s=time.monotonic() - self._started,
        )

    @property
    def answer_text(self) -> str:
        """The answer as the SLM wrote it, commands included."""
        return self._answer

    def _start(self, messages: Sequence[Mapping[str, str]]) -> None:
        self._messages = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]  # type: ignore[arg-type]
        self._prompt = render_chat(
            messages,
            template=self.model.metadata.get("tokenizer.chat_template"),
            bos_token=self.model.special_token_text("bos"),
            eos_token=self.model.special_token_text("eos"),
        )
        prompt_tokens = self.model.tokenize_prompt(self._prompt)
        self.model.sync(prompt_tokens)
        self._room = min(self.limits.max_tokens, self.model.n_ctx - len(prompt_tokens) - 1)
        self._prompt_len = len(prompt_tokens)
        self.answer_tokens, self.answer_mask = [], []
        self._answer, self._calls, self._cost = "", 0, 0.0
        self._slm_tokens, self._since_call = 0, 0
        self._answer_id = uuid.uuid4().hex[:12]
        self._started = time.monotonic()

    def _decode(
        self, sampler: TokenSampler, prefix: str
    ) -> Generator[RelayEvent, None, FinishReason]:
        scanner = CallScanner(self.limits.max_call_tokens)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        if prefix:
            self._append(self.model.tokenize(prefix), local=True)
            if (yield from self._scan(scanner, prefix, 0)):
                return "stop"
        while len(self.answer_tokens) < self._room:
            asked = self.policy.before_token(self._policy_state())
            if asked and (yield from self._flush_then_call(scanner, asked)):
                return "stop"
            if len(self.answer_tokens) >= self._room:
                break
            token = sampler.sample()
            if self.model.is_end_of_generation(token):
                yield from self._flush(scanner)
                return "stop"
            self._append([token], local=True)
            text = decoder.decode(self.model.detokenize([token]))
            if (yield from self._scan(scanner, text, 1)):
                return "stop"
        yield from self._flush(scanner)
        return "length"

    def _scan(self, scanner: CallScanner, text: str, n_tokens: int) -> _Steps:
        """Show SLM text, act on commands; True when a call finished the answer."""
        for segment in scanner.feed(text):
            if isinstance(segment, str):
                self._answer += segment
                yield TextEvent(source="slm", text=segment, n_tokens=n_tokens)
                n_tokens = 0
                continue
            self._answer += segment.raw
            asked = self.policy.on_command(segment)
            if asked and (yield from self._call(asked)):
                return True
        return False

    def _flush(self, scanner: CallScanner) -> Iterator[RelayEvent]:
        held = scanner.flush()
        if held:
            self._answer += held
            yield TextEvent(source="slm", text=held)

    def _flush_then_call(self, scanner: CallScanner, asked: int) -> _Steps:
        yield from self._flush(scanner)
        return (yield from self._call(asked))

    def _call(self, requested: int) -> _Steps:
        """One call; True when the cloud finished the answer."""
        granted = min(requested, self._room - len(self.answer_tokens))
        if self._calls >= self.limits.max_calls or granted <= 0:
            return False
        self._calls += 1
        self._since_call = 0
        call_id = f"call-{self._answer_id}-{self._calls}"
        request = self._request(call_id, granted)
        yield CallStarted(
            call_id=call_id,
            requested=requested,
            granted=granted,
            context_tokens=request.context_tokens,
        )
        started = time.monotonic()
        pieces: list[str] = []
        end = CloudEnd(outcome="fallback", reason="the cloud ended without a result")
        for item in self.cloud.stream(request):
            if isinstance(item, CloudText):
                pieces.append(item.text)
                yield TextEvent(source="llm", text=item.text)
            elif isinstance(item, CloudBudget):
                yield BudgetEvent(call_id=call_id, requested=item.requested,
                                  granted=item.granted, reason=item.reason)  # fmt: skip
            else:
                end = item
        spliced = self.splice("".join(pieces))
        self._cost += end.cost_usd
        if end.outcome == "fallback":
            yield FallbackEvent(call_id=call_id, reason=end.reason, kept_tokens=spliced)
        yield CallFinished(
            call_id=call_id,
            outcome=end.outcome,
            tokens=spliced,
            finish_reason=end.finish_reason,
            latency_ms=(time.monotonic() - started) * 1000,
            cost_usd=end.cost_usd,
        )
        return end.outcome == "ok" and end.finish_reason == "stop"

    def _request(self, call_id: str, granted: int) -> CloudRequest:
        answer = strip_calls(self._answer)
        messages = [*self._messages, ChatMessage(role="assistant", content=answer)]
        return CloudRequest(
            call_id=call_id,
            answer_id=self._answer_id,
            prompt=self._prompt + answer,
            messages=messages,
            max_tokens=granted,
            context_tokens=self._prompt_len + len(self.answer_tokens),
        )

    def splice(self, text: str) -> int:
        """Append cloud text to the answer and the SLM's context; return its token count.

        The text is tokenized on its own and only its tokens are evaluated into
        the KV cache (training rollouts build sequences the same way).
        """
        if not text:
            return 0
        tokens = self.model.tokenize(text)[: self._room - len(self.answer_tokens)]
        self._append(tokens, local=False)
        self._answer += text
        return len(tokens)

    def _append(self, tokens: list[int], *, local: bool) -> None:
        self.model.eval(tokens)
        self.answer_tokens += tokens
        self.answer_mask += [int(local)] * len(tokens)
        if local:
            self._slm_tokens += len(tokens)
            self._since_call += len(tokens)

    def _policy_state(self) -> PolicyState:
        return PolicyState(
            answer_tokens=len(self.answer_tokens),
            tokens_left=self._room - len(self.answer_tokens),
            tokens_since_call=self._since_call,
            calls=self._calls,
            entropy=self.model.next_token_entropy,
        )

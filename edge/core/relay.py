"""The relay loop: the SLM decodes, the cloud fills in where asked.

One answer is a generator of steps, :meth:`RelayAnswer.steps`. It knows tokens
and text only; a driver owns the model and the cloud and answers its requests:

* :class:`Extend` / :class:`Rewind`: append tokens to / drop tokens from the
  model's context (the answer part of it);
* ``SAMPLE``: reply with the token the model samples next;
* ``ENTROPY``: reply with the entropy of the next-token distribution;
* :class:`CallCloud`: reply with the cloud's items for the request;
* anything else is a :mod:`protocol.events` event for the user.

:class:`edge.core.loop.RelayLoop` drives one answer on any local model (llama.cpp on
the edge, transformers in training); :func:`edge.core.batch.relay_batch` drives many
with one batched forward per step. Read top to bottom, an answer goes:

1. Before each SLM token the policy may call (only at a UTF-8 character
   boundary: a call waits for a character that is still incomplete).
2. The SLM's text goes through a :class:`CallScanner`: commands are never shown.
   A complete command either leads to a call or to a ``CallSkipped`` event
   (``<call>0</call>``, ``<call></call>``, the policy, the call limit).
3. A call ends the SLM's turn at ``</call>``: the context keeps exactly the text
   up to it (a token such as ``>.`` is replaced by the tokens of ``>``; the rest
   is discarded). The cloud gets the prompt and answer with every command
   replaced, at most ``min(N, tokens left)`` tokens, the template's turn
   markers as ``stop`` and a seed derived from the answer's.
4. Cloud text is shown as it streams, cut where the answer's room ends, and
   tokenized on its own as plain text: its settled tokens are evaluated while
   the stream still arrives, the rest when it ends (mask 0), so the SLM
   resumes at once and its context holds exactly the text's own tokens. It is
   never scanned for commands. ``stop`` with text ends the answer; ``length``, a
   ``stop`` with no text (or only whitespace) or a fallback hands back to the SLM.
"""

from __future__ import annotations

import codecs
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from edge.core.cloud import CloudBudget, CloudEnd, CloudRequest, CloudSkip, CloudText
from edge.core.local_model import TextCodec, common_prefix
from edge.core.policies import CallPolicy, PolicyState
from edge.core.prompt import RelayPrompt
from edge.core.record import AnswerRecord, CallRecord
from edge.core.repetition import repeating
from edge.core.splice import Splice
from protocol.calls import (
    DEFAULT_MAX_CALL_TOKENS,
    CallCommand,
    CallScanner,
    cloud_view,
    split_after_commands,
)
from protocol.events import (
    BudgetEvent,
    CallFinished,
    CallSkipped,
    CallStarted,
    CloudSkipped,
    FallbackEvent,
    RelayEvent,
    SkipReason,
    TextEvent,
)
from protocol.wire import ChatMessage, FinishReason

__all__ = [
    "ENTROPY",
    "SAMPLE",
    "CallCloud",
    "Extend",
    "RelayAnswer",
    "RelayLimits",
    "Rewind",
    "Step",
]


@dataclass(frozen=True)
class Extend:
    tokens: list[int]


@dataclass(frozen=True)
class Rewind:
    n: int


@dataclass(frozen=True)
class CallCloud:
    request: CloudRequest


_CUT = "cut where the answer's token limit ends"
CATCH_UP = 16
"""Settled cloud tokens evaluated at once when pieces arrive faster than the SLM reads."""
SAMPLE = "sample"
ENTROPY = "entropy"
Step = RelayEvent | Extend | Rewind | CallCloud | str
_Steps = Generator[Step, Any, None]


@dataclass(frozen=True)
class RelayLimits:
    """``max_calls``: calls per answer (4 = the method's 5 SLM turns; a later command is
    skipped); ``max_tokens``: answer tokens from both models; ``max_call_tokens``: cap on N;
    ``repeat_guard``: end the answer when one stretch of tokens has repeated this many
    times in a row (0: never; see :mod:`edge.core.repetition`)."""

    max_calls: int = 4
    max_tokens: int = 8192
    max_call_tokens: int = DEFAULT_MAX_CALL_TOKENS
    repeat_guard: int = 0


class RelayAnswer:
    """One answer: its :class:`AnswerRecord` and the steps that produce it."""

    def __init__(
        self,
        prompt: RelayPrompt,
        codec: TextCodec,
        policy: CallPolicy,
        *,
        limits: RelayLimits,
        n_ctx: int,
        seed: int | None = None,
        prefix: str = "",
        end_after_prefix: bool = False,
    ) -> None:
        """``prefix`` is answer text taken as the SLM's own (its commands act, in order);
        with ``end_after_prefix`` the answer ends there instead of being continued."""
        self.prompt, self.codec, self.policy, self.limits = prompt, codec, policy, limits
        self.seed, self.prefix, self.end_after_prefix = seed, prefix, end_after_prefix
        self.room = max(0, min(limits.max_tokens, n_ctx - len(prompt.tokens) - 1))
        self.record = AnswerRecord(uuid.uuid4().hex[:12], len(prompt.tokens))
        self._new_turn()
        self._since_call = 0
        self._deferred = 0

    def steps(self) -> _Steps:
        started = time.monotonic()
        for chunk in split_after_commands(self.prefix):
            yield from self._forced(chunk)
        if self.end_after_prefix and self.record.finish_reason is None:
            yield from self._finish("stop")
        while self.record.finish_reason is None:
            yield from self._next()
        self.record.wall_s = time.monotonic() - started
        yield self.record.done_event()

    def _left(self) -> int:
        return self.room - len(self.record.tokens)

    def _next(self) -> _Steps:
        if self._left() <= 0:
            yield from self._finish("length")
            return
        asked = self._deferred or (yield from self._ask_policy())
        if asked and not self._decoder.getstate()[0]:  # only at a character boundary
            self._deferred = 0
            granted = yield from self._grant(asked, "")
            if granted:
                yield from self._show(self._scanner.flush())  # a partial tag is text now
                yield from self._call(asked, granted)
                return
        elif asked:
            self._deferred = asked
        token = yield SAMPLE
        if self.codec.is_end(token):
            self.record.end_token = token
            yield from self._finish("stop")
        else:
            yield from self._take(token, self.codec.detokenize([token]))

    def _ask_policy(self) -> Generator[Step, Any, int]:
        entropy = (yield ENTROPY) if self.policy.uses_entropy else None
        rec = self.record
        state = PolicyState(len(rec.tokens), self._left(), self._since_call, len(rec.calls),
                            entropy, self.seed)  # fmt: skip
        return self.policy.before_token(state)

    def _take(self, token: int, data: bytes) -> _Steps:
        """One SLM token: show its text, act on a command it completes."""
        piece = self._decoder.decode(data)
        consumed = -len(self._scanner.pending)
        first = True
        for segment in self._scanner.feed(piece):
            if isinstance(segment, str):
                consumed += len(segment)
                yield from self._show(segment, n_tokens=int(first))
                first = False
                continue
            consumed += len(segment.raw)
            self.record.text += segment.raw
            granted = yield from self._asked_by(segment)
            if granted:
                yield from self._end_turn(token, piece, consumed)
                yield from self._call(segment.n, min(granted, self._left()))
                return
        yield from self._append([token], local=True)
        guard = self.limits.repeat_guard
        if guard and (period := repeating(self.record.tokens, guard)):
            self.record.note = f"stopped: the same {period} tokens repeated {guard} times"
            yield from self._finish("length")
            return
        if self._decoder.getstate()[0]:
            self._unsettled.append(token)
            self._unsettled_text += piece
        else:
            self._unsettled, self._unsettled_text = [], ""

    def _forced(self, text: str) -> _Steps:
        """Prefix text taken as the SLM's own: it may call, then the rest follows."""
        for token in self.codec.tokenize(text):
            if self.record.finish_reason is not None or self._left() <= 0:
                return
            yield from self._take(token, self.codec.detokenize([token]))

    def _asked_by(self, command: CallCommand) -> Generator[Step, Any, int]:
        reason: SkipReason | None = None
        if command.requested is None:
            reason = "empty"
        elif command.n == 0:
            reason = "zero"
        elif not (asked := self.policy.on_command(command)):
            reason = "policy"
        if reason is not None:
            yield CallSkipped(requested=command.requested or 0, reason=reason, raw=command.raw)
            return 0
        return (yield from self._grant(asked, command.raw))

    def _grant(self, requested: int, raw: str) -> Generator[Step, Any, int]:
        """Tokens a call may have; 0 past the call limit or the room, which a command (not a
        policy's wish, asked again at every token) reports as skipped."""
        reason: SkipReason | None = None
        if len(self.record.calls) >= self.limits.max_calls:
            reason = "limit"
        elif self._left() <= 1:
            reason = "no room"
        if reason is not None:
            if raw:
                yield CallSkipped(requested=requested, reason=reason, raw=raw)
            return 0
        return min(requested, self._left())

    def _end_turn(self, token: int, piece: str, consumed: int) -> _Steps:
        """The context keeps exactly the text up to ``</call>``; the rest of the token goes."""
        if consumed == len(piece) and not self._decoder.getstate()[0] and not self._unsettled:
            yield from self._append([token], local=True)
        else:
            if self._unsettled:
                yield from self._rewind(len(self._unsettled))
            kept = self._unsettled_text + piece[:consumed]
            yield from self._append(self.codec.tokenize(kept), local=True)
        self._new_turn()

    def _call(self, requested: int, granted: int) -> _Steps:
        request = self._request(granted)
        yield CallStarted(call_id=request.call_id, requested=requested, granted=granted,
                          context_tokens=request.context_tokens)  # fmt: skip
        started = time.monotonic()
        splice = Splice(self.codec, room=self._left(), exact=self.seed is not None)
        self._spliced = 0  # the call's tokens evaluated so far
        end = yield from self._receive(request, splice)
        tokens = splice.final()  # the context holds exactly the text's own tokens
        yield from self._settle(splice, common_prefix(splice.tokens, tokens), tokens)
        self.record.text += splice.text
        call = CallRecord(request.call_id, requested, granted, len(tokens), end.outcome,
                          end.finish_reason if end.outcome == "ok" else None, end.prompt_tokens,
                          end.completion_tokens, end.cost_usd,
                          (time.monotonic() - started) * 1000, end.cloud)  # fmt: skip
        self.record.calls.append(call)
        self._since_call = 0
        if end.outcome == "fallback":
            yield FallbackEvent(call_id=call.call_id, reason=end.reason, kept_tokens=call.tokens)
        note = "" if call.outcome != "ok" else _CUT if splice.full else end.reason
        yield CallFinished(call_id=call.call_id, outcome=call.outcome, tokens=call.tokens,
                           finish_reason=call.finish_reason, latency_ms=call.latency_ms,
                           cost_usd=call.cost_usd, note=note, cloud=call.cloud,
                           requested=requested, granted=granted)  # fmt: skip
        if call.finish_reason == "stop" and splice.text.strip():  # a bare stop ends nothing
            yield from self._finish("stop")
        elif splice.full:
            yield from self._finish("length")

    def _receive(self, request: CloudRequest, splice: Splice) -> Generator[Step, Any, CloudEnd]:
        """Stream the cloud's answer to the user, as far as the room allows.

        The text's tokens are evaluated whenever no piece is waiting (or a backlog
        grows), so little is left to evaluate when the stream ends.
        """
        end = CloudEnd(outcome="fallback", reason="the cloud ended without a result")
        items: Iterator[Any] = yield CallCloud(request)
        more_ready = getattr(items, "ready", lambda: True)  # a list has everything at once
        counted = 0  # the call's tokens the text events have given so far
        try:
            for item in items:
                if isinstance(item, CloudText):
                    shown = splice.add(item.text)
                    standing = splice.advance()
                    if shown:
                        self.record.shown += shown
                        held = len(splice.final() if splice.full else splice.tokens)
                        yield TextEvent(source="llm", text=shown, n_tokens=max(0, held - counted))
                        counted = max(counted, held)
                    ahead = splice.evaluable()
                    if not more_ready() or len(ahead) - self._spliced >= CATCH_UP:
                        yield from self._settle(splice, standing, ahead)
                    else:
                        yield from self._settle(splice, standing, ahead[: self._spliced])
                    if splice.full:
                        return CloudEnd(outcome="ok", finish_reason="length", cloud=item.cloud)
                elif isinstance(item, CloudBudget):
                    yield BudgetEvent(call_id=request.call_id, requested=item.requested,
                                      granted=item.granted, reason=item.reason)  # fmt: skip
                elif isinstance(item, CloudSkip):
                    yield CloudSkipped(call_id=request.call_id, cloud=item.cloud,
                                       reason=item.reason)  # fmt: skip
                else:
                    end = item
        finally:
            getattr(items, "close", lambda: None)()
        return end

    def _settle(self, splice: Splice, standing: int, target: list[int]) -> _Steps:
        """Make the call's part of the context ``target``, whose first ``standing`` tokens
        match what was evaluated: drop what changed, evaluate the rest (one by one when exact)."""
        if self._spliced > standing:
            yield from self._rewind(self._spliced - standing)
            self._spliced = standing
        new = target[self._spliced :]
        for batch in [[t] for t in new] if splice.exact else [new]:
            yield from self._append(batch, local=False)
        self._spliced += len(new)

    def _request(self, granted: int) -> CloudRequest:
        answer = cloud_view(self.record.text)
        prompt = self.prompt
        index = len(self.record.calls) + 1
        earlier = prompt.cloud_messages
        if prompt.continues:  # the answer goes on from the final assistant message
            earlier, answer_message = earlier[:-1], earlier[-1].content + answer
        else:
            answer_message = answer
        return CloudRequest(
            call_id=f"call-{self.record.answer_id}-{index}",
            answer_id=self.record.answer_id,
            prompt=prompt.cloud_text + answer,
            messages=(*earlier, ChatMessage(role="assistant", content=answer_message)),
            max_tokens=granted,
            context_tokens=len(prompt.tokens) + len(self.record.tokens),
            seed=None if self.seed is None else (self.seed + index) % 2**32,
            stop=prompt.stops,
        )

    def _append(self, tokens: list[int], *, local: bool) -> _Steps:
        if not tokens:
            return
        yield Extend(tokens)
        self.record.tokens += tokens
        self.record.mask += [int(local)] * len(tokens)
        if local:
            self._since_call += len(tokens)

    def _rewind(self, n: int) -> _Steps:
        yield Rewind(n)
        self._since_call -= sum(self.record.mask[-n:])
        del self.record.tokens[-n:], self.record.mask[-n:]

    def _show(self, text: str, n_tokens: int = 0) -> _Steps:
        """SLM text: into the answer and out to the user."""
        if text:
            self.record.text += text
            self.record.shown += text
            yield TextEvent(source="slm", text=text, n_tokens=n_tokens)

    def _finish(self, reason: FinishReason) -> _Steps:
        """Release what the scanner still holds, and end the answer. A character the last
        tokens left unfinished is dropped from the context (never shown as U+FFFD)."""
        if self._decoder.getstate()[0]:
            yield from self._rewind(len(self._unsettled))
            yield from self._append(self.codec.tokenize(self._unsettled_text), local=True)
            self._decoder.reset()
        held = "".join(s if isinstance(s, str) else s.raw for s in self._scanner.feed(""))
        yield from self._show(held + self._scanner.flush())
        self.record.finish_reason = reason

    def _new_turn(self) -> None:
        self._scanner = CallScanner(self.limits.max_call_tokens)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._unsettled: list[int] = []
        self._unsettled_text = ""

"""The relay loop: the SLM decodes, the cloud fills in where asked.

One answer is a generator of steps, :meth:`RelayAnswer.steps` (the steps and
the driver's replies: :mod:`edge.core.steps`). It knows tokens and text only;
:class:`edge.core.loop.RelayLoop` drives one answer on any local model
(llama.cpp on the edge, transformers in training); :func:`edge.core.batch.relay_batch`
drives many with one batched forward per step. Read top to bottom, an answer goes:

1. Before each SLM token the policy may call (only at a UTF-8 character
   boundary: a call waits for a character that is still incomplete).
2. The SLM's token goes to its turn (:mod:`edge.core.turn`): its text is shown,
   commands never are. A complete command either leads to a call or to a
   ``CallSkipped`` event (``<call>0</call>``, ``<call></call>``, the policy, the
   call limit); a call ends the turn at ``</call>``.
3. The cloud gets the prompt and answer with every command replaced, at most
   ``min(N, tokens left)`` tokens (:mod:`edge.core.call_request`).
4. The call's stream is shown and spliced into the SLM's context as it arrives
   (:mod:`edge.core.receipt`); ``stop`` with text ends the answer, anything
   else hands back to the SLM in a new turn.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from edge.core.call_request import cloud_request
from edge.core.context import AnswerContext
from edge.core.local_model import TextCodec
from edge.core.policies import CallPolicy, PolicyState
from edge.core.prompt import RelayPrompt
from edge.core.receipt import CallReceipt
from edge.core.record import AnswerRecord
from edge.core.steps import ENTROPY, SAMPLE, CallCloud, Extend, Rewind, Step, Steps
from edge.core.turn import SlmTurn
from protocol.calls import DEFAULT_MAX_CALL_TOKENS, CallCommand, split_after_commands
from protocol.events import CallSkipped, CallStarted, SkipReason

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
        self.record = AnswerRecord(uuid.uuid4().hex[:12], len(prompt.tokens))
        room = max(0, min(limits.max_tokens, n_ctx - len(prompt.tokens) - 1))
        self.context = AnswerContext(self.record, room)
        self.turn = self._new_turn()
        self._deferred = 0  # a policy's call waiting for a character to be complete

    def steps(self) -> Steps:
        started = time.monotonic()
        for chunk in split_after_commands(self.prefix):
            yield from self._forced(chunk)
        if self.end_after_prefix and self.record.finish_reason is None:
            yield from self.turn.finish("stop")
        while self.record.finish_reason is None:
            yield from self._next()
        self.record.wall_s = time.monotonic() - started
        yield self.record.done_event()

    def _next(self) -> Steps:
        """One SLM token, or a call the policy asks for before it."""
        if self.context.left <= 0:
            yield from self.turn.finish("length")
            return
        asked = self._deferred or (yield from self._ask_policy())
        if asked and not self.turn.mid_character:
            self._deferred = 0
            granted = yield from self._grant(asked, "")
            if granted:
                yield from self.turn.flush()  # a partial tag is text now
                yield from self._call(asked, granted)
                return
        elif asked:
            self._deferred = asked
        token = yield SAMPLE
        if self.codec.is_end(token):
            self.record.end_token = token
            yield from self.turn.finish("stop")
        else:
            yield from self._take(token)

    def _forced(self, text: str) -> Steps:
        """Prefix text taken as the SLM's own: it may call, then the rest follows."""
        for token in self.codec.tokenize(text):
            if self.record.finish_reason is not None or self.context.left <= 0:
                return
            yield from self._take(token)

    def _take(self, token: int) -> Steps:
        """One SLM token into its turn; a command it completes may end the turn in a call."""
        asked = yield from self.turn.take(token, self._asked_by)
        if asked is not None:
            self.turn = self._new_turn()
            yield from self._call(asked.requested, min(asked.granted, self.context.left))

    def _call(self, requested: int, granted: int) -> Steps:
        request = cloud_request(self.prompt, self.record, granted, self.seed)
        yield CallStarted(call_id=request.call_id, requested=requested, granted=granted,
                          context_tokens=request.context_tokens)  # fmt: skip
        receipt = CallReceipt(self.context, self.codec, exact=self.seed is not None)
        ended = yield from receipt.receive(request, requested)
        if ended is not None:
            yield from self.turn.finish(ended)

    def _ask_policy(self) -> Generator[Step, Any, int]:
        entropy = (yield ENTROPY) if self.policy.uses_entropy else None
        rec, context = self.record, self.context
        state = PolicyState(len(rec.tokens), context.left, context.since_call, len(rec.calls),
                            entropy, self.seed)  # fmt: skip
        return self.policy.before_token(state)

    def _asked_by(self, command: CallCommand) -> Generator[Step, Any, int]:
        """Tokens a complete command is granted (0: skipped, and said so)."""
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
        elif self.context.left <= 1:
            reason = "no room"
        if reason is not None:
            if raw:
                yield CallSkipped(requested=requested, reason=reason, raw=raw)
            return 0
        return min(requested, self.context.left)

    def _new_turn(self) -> SlmTurn:
        return SlmTurn(self.context, self.codec, max_call_tokens=self.limits.max_call_tokens,
                       repeat_guard=self.limits.repeat_guard)  # fmt: skip

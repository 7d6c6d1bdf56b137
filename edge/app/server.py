"""``relay serve``: the relay behind a local OpenAI-compatible chat endpoint, and a page.

* ``POST /v1/chat/completions``: the usual parameters are honoured
  (``max_tokens``/``max_completion_tokens``, ``stop``, ``temperature``, ``top_p``,
  ``seed``, ``stream_options.include_usage``); a final assistant message is
  continued unless ``continue_final_message`` is false. Each streamed chunk says
  which model wrote its text (``delta.relay_source``) and calls appear as
  ``delta.relay_call``; usage carries ``relay`` details (SLM and cloud tokens,
  calls, cost). A prompt that does not fit is a 400 before the stream starts.
* One SLM answers one request at a time; others wait in arrival order, at most
  ``max_waiting`` of them (then 429 with ``Retry-After``). A client that goes
  away frees its place and stops its answer at once. A request may ask for at
  most ``max_output_tokens`` (more is a 400); an answer still running
  ``request_timeout_s`` after it arrived ends with ``finish_reason = "length"``.
* With ``api_keys`` set, the ``/v1`` routes want ``Authorization: Bearer KEY``
  (401 without); the page asks for the key when it meets a 401.
* ``GET /v1/models``, ``GET /health`` (the cloud's reachability and the
  breaker), ``GET /v1/relay/status`` (spend against the caps), ``GET /metrics``
  (Prometheus, :mod:`edge.app.metrics`; behind the key unless ``metrics_public``) and
  ``GET /``: a chat page that shows SLM and cloud text in two colours, each call,
  and a meter.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib import resources
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from edge.app.metrics import EdgeMetrics, cap_spend
from edge.app.runtime import Relay
from edge.llama import iterate_in_thread
from edge.openai_compat import tracing
from edge.openai_compat.logs import RequestLog, annotate
from edge.openai_compat.metrics import add_metrics_route
from edge.openai_compat.server import (
    add_error_handlers,
    check_api_key,
    error_responses,
    event_stream,
    key_digest,
    serve_app,
    until_disconnected,
)
from protocol.errors import Overloaded
from protocol.events import (
    CallFinished,
    CallSkipped,
    CallStarted,
    CloudSkipped,
    DoneEvent,
    RelayEvent,
    TextEvent,
)
from protocol.stops import StopMatcher
from protocol.wire import (
    SSE_DONE,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessage,
    ModelCard,
    ModelList,
    RelayCall,
    RelayDetails,
    Usage,
    encode_sse,
    new_id,
)

__all__ = ["SERVED_MODEL", "create_edge_app", "serve_app"]

SERVED_MODEL = "relayllm"


class EdgeService:
    """The relay behind the routes: one model on one worker thread, a bounded queue."""

    def __init__(self, relay: Relay, *, max_waiting: int = 8) -> None:
        self.relay = relay
        self.max_waiting = max_waiting
        self.in_flight = 0
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay")
        self.api_keys = tuple(key_digest(k.get_secret_value()) for k in relay.settings.api_keys)
        self.answers = self.calls = self.cloud_tokens = 0
        self.spent_usd = 0.0
        self.metrics = EdgeMetrics()
        self.metrics.follow(
            queue=lambda: self.in_flight,
            clouds=lambda: relay.clouds,
            spend=lambda: cap_spend(
                relay.ledger, relay.settings, [c["name"] for c in relay.clouds]
            ),
        )

    async def answer(self, request: ChatCompletionRequest) -> AsyncIterator[RelayEvent]:
        """Admit ``request`` (or refuse it: 429), build its prompt (or refuse it: 400), and
        return its events; they come from the model's thread, in the order requests came."""
        settings = self.relay.settings
        wanted = request.token_limit_within(settings.max_output_tokens)
        deadline = asyncio.get_running_loop().time() + settings.request_timeout_s
        if self.in_flight > self.max_waiting:
            self.metrics.refused.labels("overloaded").inc()
            raise Overloaded(f"{self.in_flight - 1} answers are waiting; try again shortly",
                             retry_after_s=5.0)  # fmt: skip
        self.in_flight += 1
        try:
            messages = [m.model_dump() for m in request.messages]
            continue_final = request.continues_final_message
            prompt = await asyncio.to_thread(self.relay.prompt, messages,
                                             continue_final=continue_final)  # fmt: skip
        except BaseException:
            self.in_flight -= 1
            raise
        loop = self.relay.loop
        asked = {"temperature": request.temperature, "top_p": request.top_p, "seed": request.seed}
        sampling = replace(loop.sampling, **{k: v for k, v in asked.items() if v is not None})
        limits = replace(loop.limits, max_tokens=wanted or loop.limits.max_tokens)
        arrived, context = time.monotonic(), contextvars.copy_context()  # the request's trace

        def start() -> Iterator[RelayEvent]:  # on the model's thread, when its turn comes
            self.metrics.queue_wait.observe(time.monotonic() - arrived)
            return _within(context, self.relay.answer(prompt, sampling=sampling, limits=limits))

        events = iterate_in_thread(self.worker, start)
        answer = self._timed(self._stopped(events, request.stop_sequences), deadline)
        return self._counted(self.metrics.watch(answer))

    async def _timed(
        self, events: AsyncIterator[RelayEvent], deadline: float
    ) -> AsyncIterator[RelayEvent]:
        """The answer, ended with ``finish_reason = "length"`` at ``deadline`` (loop time)."""
        loop, started = asyncio.get_running_loop(), False
        try:
            while True:
                try:
                    left = max(0.0, deadline - loop.time())
                    event = await asyncio.wait_for(anext(events), left)  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
                except asyncio.TimeoutError:  # the model has stopped: its record is final
                    record = self.relay.record if started else None
                    done = record.done_event() if record else DoneEvent(
                        finish_reason="length", slm_tokens=0, llm_tokens=0, calls=0)  # fmt: skip
                    yield done.model_copy(update={"finish_reason": "length",
                                                  "note": "request timeout"})  # fmt: skip
                    return
                started = True
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def _stopped(
        self, events: AsyncIterator[RelayEvent], stops: tuple[str, ...]
    ) -> AsyncIterator[RelayEvent]:
        """The answer, ended at the first of ``stops`` in its text (which is not shown)."""
        matcher = StopMatcher(stops)
        held: list[TextEvent] = []
        try:
            async for event in events:
                if not isinstance(event, TextEvent) or not stops:
                    if isinstance(event, DoneEvent):
                        for piece in _release(held, matcher.flush()):
                            yield piece
                    yield event
                    continue
                held.append(event)
                text, hit = matcher.feed(event.text)
                for piece in _release(held, text):
                    yield piece
                if hit:
                    await events.aclose()  # type: ignore[attr-defined]  # stops the model
                    record = self.relay.record
                    assert record is not None
                    yield record.done_event().model_copy(update={"finish_reason": "stop"})
                    return
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def _counted(self, events: AsyncIterator[RelayEvent]) -> AsyncIterator[RelayEvent]:
        try:
            async for event in events:
                if isinstance(event, DoneEvent):
                    annotate(slm_tokens=event.slm_tokens, llm_tokens=event.llm_tokens,
                             calls=event.calls, finish_reason=event.finish_reason)  # fmt: skip
                    self.answers += 1
                    self.calls += event.calls
                    self.cloud_tokens += event.llm_tokens
                    self.spent_usd += event.cost_usd
                yield event
        finally:
            self.in_flight -= 1
            await events.aclose()  # type: ignore[attr-defined]


def _within(context: contextvars.Context, events: Iterator[RelayEvent]) -> Iterator[RelayEvent]:
    """``events``, each one made in ``context`` (so the answer's span is the request's child)."""
    try:
        while True:
            try:
                yield context.run(next, events)
            except StopIteration:
                return
    finally:
        context.run(getattr(events, "close", lambda: None))


def _release(held: list[TextEvent], text: str) -> list[TextEvent]:
    """Take ``text`` off the front of the held pieces, keeping who wrote each part."""
    out = []
    while text and held:
        first = held[0]
        part = first.text[: len(text)]
        out.append(TextEvent(source=first.source, text=part, n_tokens=first.n_tokens))
        text = text[len(part) :]
        if len(part) == len(first.text):
            held.pop(0)
        else:
            held[0] = TextEvent(source=first.source, text=first.text[len(part) :])
    return out


def create_edge_app(relay: Relay, *, max_waiting: int = 8) -> FastAPI:
    """An app answering chat completions with ``relay``."""
    tracing.tracer("relayllm-edge")  # set up before the first request, when OTEL_* ask
    app = FastAPI(title="relayllm edge")
    service = EdgeService(relay, max_waiting=max_waiting)
    app.state.service = service
    app.add_middleware(RequestLog)  # every answer has an id and a log line
    add_error_handlers(app)

    def require_key(request: Request) -> None:
        if service.api_keys:
            check_api_key(request.headers.get("authorization"), service.api_keys)

    guarded = [Depends(require_key)]

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return resources.files("edge").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/v1/models", dependencies=guarded, responses=error_responses(401))
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=SERVED_MODEL, relay=_models(relay))])

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **_models(relay), "gpu": relay.model.placement(),
                "cloud": await _cloud_health(relay)}  # fmt: skip

    add_metrics_route(app, service.metrics.registry, guard=guarded,
                      public=relay.settings.metrics_public)  # fmt: skip

    @app.get("/v1/relay/status", dependencies=guarded, responses=error_responses(401))
    async def status() -> dict[str, Any]:
        return await asyncio.to_thread(_status, service)

    @app.post(
        "/v1/chat/completions", dependencies=guarded, response_model=None,
        responses=error_responses(400, 401, 413, 429, 503),
    )  # fmt: skip
    async def chat(
        body: ChatCompletionRequest, request: Request
    ) -> JSONResponse | StreamingResponse:
        return await until_disconnected(request, _reply(service, body))

    return app


async def _reply(
    service: EdgeService, body: ChatCompletionRequest
) -> JSONResponse | StreamingResponse:
    """The answer to ``body``: streamed, or whole once the model is done."""
    events = await service.answer(body)
    rid = new_id("chatcmpl")
    if body.stream:
        return event_stream(_chunks(rid, events, body.include_usage))
    text, done = "", None
    async for event in events:
        if isinstance(event, TextEvent):
            text += event.text
        elif isinstance(event, DoneEvent):
            done = event
    assert done is not None
    choice = ChatChoice(
        message=ChatMessage(role="assistant", content=text), finish_reason=done.finish_reason
    )
    reply = ChatCompletion(id=rid, model=SERVED_MODEL, choices=[choice], usage=_usage(done))
    return JSONResponse(reply.model_dump(exclude_none=True))


def _usage(done: DoneEvent) -> Usage:
    usage = Usage.of(done.prompt_tokens, done.slm_tokens + done.llm_tokens)
    details = RelayDetails(slm_tokens=done.slm_tokens, llm_tokens=done.llm_tokens,
                           calls=done.calls, cost_usd=done.cost_usd)  # fmt: skip
    return usage.model_copy(update={"relay": details})


async def _chunks(
    rid: str, events: AsyncIterator[RelayEvent], include_usage: bool
) -> AsyncIterator[bytes]:
    def chunk(delta: ChatDelta, finish: str | None = None) -> bytes:
        choice = ChatChunkChoice(delta=delta, finish_reason=finish)  # type: ignore[arg-type]
        return encode_sse(ChatCompletionChunk(id=rid, model=SERVED_MODEL, choices=[choice]))

    yield chunk(ChatDelta(role="assistant", content=""))
    async for event in events:
        if isinstance(event, TextEvent) and event.text:
            yield chunk(ChatDelta(content=event.text, relay_source=event.source))
        elif (call := _call_of(event)) is not None:
            yield chunk(ChatDelta(relay_call=call))
        elif isinstance(event, DoneEvent):
            yield chunk(ChatDelta(), event.finish_reason)
            if include_usage:
                usage = _usage(event)
                yield encode_sse(ChatCompletionChunk(id=rid, model=SERVED_MODEL, choices=[],
                                                     usage=usage))  # fmt: skip
    yield SSE_DONE


def _call_of(event: RelayEvent) -> RelayCall | None:
    if isinstance(event, CallStarted):
        return RelayCall(call_id=event.call_id, requested=event.requested, granted=event.granted)
    if isinstance(event, CloudSkipped):
        return RelayCall(call_id=event.call_id, outcome="cloud_skipped", cloud=event.cloud,
                         reason=event.reason)  # fmt: skip
    if isinstance(event, CallFinished):
        return RelayCall(call_id=event.call_id, outcome=event.outcome, tokens=event.tokens,
                         reason=event.note, cloud=event.cloud, requested=event.requested,
                         granted=event.granted)  # fmt: skip
    if isinstance(event, CallSkipped):
        return RelayCall(requested=event.requested, outcome="skipped", reason=event.reason)
    return None


def _models(relay: Relay) -> dict[str, str]:
    """The SLM and the first cloud (``clouds`` in /health lists them all)."""
    settings = relay.settings
    first = (relay.clouds or [{}])[0]
    cloud = first.get("model") or "(the endpoint's first)"
    if settings.offline:
        cloud = "offline"
    url = first.get("url", settings.cloud_url)
    return {"slm": relay.model.path.name, "cloud_model": cloud, "cloud_url": url,
            "policy": relay.policy.name, "policy_reason": relay.policy.label}  # fmt: skip


async def _cloud_health(relay: Relay) -> dict[str, Any]:
    """Whether each cloud answers its model list (within 2 s), its family and breaker; the
    first cloud's figures also at the top level."""
    if relay.settings.offline:
        return {"reachable": False, "breaker": "offline", "clouds": []}
    guarded = getattr(relay.loop.cloud, "clouds", ())
    async with httpx.AsyncClient(timeout=2.0) as client:
        checks = await asyncio.gather(*(_reachable(client, c.http) for c in guarded))
    clouds = [info | check for info, check in zip(relay.clouds, checks)]
    first = clouds[0] if clouds else {"reachable": False, "breaker": "none"}
    return {key: first.get(key) for key in ("reachable", "detail", "breaker", "latency_ms")} | {
        "clouds": clouds
    }


async def _reachable(client: httpx.AsyncClient, cloud: Any) -> dict[str, Any]:
    url, headers = cloud.listing_request()
    started = time.monotonic()
    try:
        answer = await client.get(url, headers=headers)
        reachable, detail = answer.status_code < 500, f"answered {answer.status_code}"
    except httpx.HTTPError as exc:
        reachable, detail = False, f"{type(exc).__name__}"
    return {"reachable": reachable, "detail": detail,
            "latency_ms": round((time.monotonic() - started) * 1000, 1)}  # fmt: skip


def _status(service: EdgeService) -> dict[str, Any]:
    settings = service.relay.settings
    caps = settings.caps.model_dump()
    spend = {}
    ledger = service.relay.ledger
    if ledger is not None:
        for period in ("day", "month"):
            used = ledger.spend(period)
            spend[period] = {"tokens": used.tokens, "usd": used.usd, "calls": used.calls}
    session = {"answers": service.answers, "calls": service.calls,
               "cloud_tokens": service.cloud_tokens, "usd": service.spent_usd}  # fmt: skip
    model = service.relay.model
    memory = {"context_tokens": model.n_ctx, "kv_cache": model.kv_cache,
              "per_conversation_mb": round(model.kv_bytes() / 2**20, 1)}  # fmt: skip
    clouds = [{k: c[k] for k in ("name", "breaker", "last_error")} for c in service.relay.clouds]
    return {"session": session, "spend": spend, "caps": caps, "waiting": service.in_flight,
            "memory": memory, "gpu": model.placement(), "clouds": clouds}  # fmt: skip

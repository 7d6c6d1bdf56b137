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

This file holds the routes, the health probe and the status; the queue, limits and stops
are :mod:`edge.app.service`, the replies :mod:`edge.app.replies`.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from edge.app.replies import reply
from edge.app.runtime import Relay
from edge.app.service import SERVED_MODEL, EdgeService
from edge.openai_compat import tracing
from edge.openai_compat.logs import RequestLog
from edge.openai_compat.metrics import add_metrics_route
from edge.openai_compat.server import (
    add_error_handlers,
    check_api_key,
    error_responses,
    serve_app,
    until_disconnected,
)
from protocol.wire import ChatCompletionRequest, ModelCard, ModelList

__all__ = ["SERVED_MODEL", "create_edge_app", "serve_app"]


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
        return await until_disconnected(request, reply(service, body))

    return app


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

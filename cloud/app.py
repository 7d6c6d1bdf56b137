"""The FastAPI application of the cloud endpoint: factory, lifespan, errors, routes.

``create_app(settings)`` builds the engine named by the settings in the
lifespan and keeps it on ``app.state``; pass ``engine=`` to serve one you made.
Every error leaves as an OpenAI-shaped body with the right status.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request

from cloud.auth import ApiKeys, require_api_key
from cloud.engine import Engine
from cloud.keys import KeyPolicy, Limits, load_keys
from cloud.limits import BodySizeLimit
from cloud.metrics import CloudMetrics, RequestCounter
from cloud.quota import Quota
from cloud.serving import Response, serve_chat, serve_completion
from cloud.settings import CloudSettings
from cloud.state import open_store
from edge.openai_compat import tracing
from edge.openai_compat.logs import RequestLog
from edge.openai_compat.metrics import add_metrics_route
from edge.openai_compat.server import add_error_handlers, error_responses, until_disconnected
from edge.openai_compat.serving import Admission, OutputLimits
from edge.reservations import ReservationStore
from protocol.errors import Overloaded, RateLimited
from protocol.wire import ChatCompletionRequest, CompletionRequest, ModelCard, ModelList

__all__ = ["build_engine", "create_app"]

log = logging.getLogger(__name__)


def build_engine(settings: CloudSettings) -> Engine:
    """The engine the settings ask for (see ``CloudSettings.engine``)."""
    if settings.chosen_engine == "expert":
        from cloud.expert_engine import ExpertEngine

        assert settings.problems is not None
        return ExpertEngine.load(
            settings.problems, model_id=settings.model_id, mode=settings.expert_mode
        )
    if settings.chosen_engine == "upstream":
        assert settings.upstream_url is not None
        from cloud.upstream_engine import UpstreamEngine

        key = settings.upstream_api_key
        return UpstreamEngine(
            settings.upstream_url,
            api_key=key.get_secret_value() if key else None,
            upstream_model=settings.upstream_model,
            model_id=settings.model_id,
            timeout_s=settings.upstream_timeout_s,
        )
    from cloud.llama_engine import LlamaEngine
    from edge.llama import resolve_model

    path = resolve_model(settings.model, default="cloud")
    return LlamaEngine.load(
        path, model_id=settings.model_id, n_ctx=settings.n_ctx, n_threads=settings.n_threads,
        prompt_slots=settings.prompt_slots, parallel=settings.parallel,
        n_gpu_layers=settings.n_gpu_layers,
    )  # fmt: skip


def create_app(
    settings: CloudSettings,
    engine: Engine | None = None,
    store: ReservationStore | None = None,
    keys: tuple[tuple[KeyPolicy, ...], Limits] | None = None,
) -> FastAPI:
    """The endpoint for ``settings``; ``engine``, ``store`` and ``keys`` (as
    :func:`~cloud.keys.load_keys` reads them) override the ones they name."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or build_engine(settings)
        state = store or open_store(settings.state_url_value)
        metrics.model = app.state.engine.model_id
        app.state.quota = Quota(state, default_max_tokens=settings.max_output_tokens,
                                metrics=metrics)  # fmt: skip
        await app.state.engine.start()
        log.info("serving model %s", app.state.engine.model_id)
        try:
            yield
        finally:
            await app.state.engine.aclose()
            state.close()

    tracing.tracer("relayllm-cloud")  # set up before the first request, when OTEL_* ask
    app = FastAPI(title="relayllm cloud", lifespan=lifespan)
    accepted, defaults = keys or load_keys(settings)
    app.state.api_keys = ApiKeys(accepted, defaults)
    app.state.admission = Admission(settings.max_queue)
    app.state.limits = OutputLimits.of(settings)
    app.state.metrics = metrics = CloudMetrics()
    metrics.follow(
        queue=lambda: app.state.admission.in_flight,
        store=lambda: getattr(getattr(app.state, "quota", None), "store", None),
        keys=accepted,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestCounter, metrics=metrics)
    app.add_middleware(RequestLog)  # outermost: every answer has an id and a log line
    add_error_handlers(app)
    _add_routes(app)
    add_metrics_route(app, metrics.registry, guard=[Depends(require_api_key)],
                      public=settings.metrics_public)  # fmt: skip
    return app


def _add_routes(app: FastAPI) -> None:
    guarded = [Depends(require_api_key)]
    errors = error_responses(400, 401, 404, 413, 429, 503)

    @app.get("/health")
    async def health(request: Request) -> dict[str, str | int]:
        engine = request.app.state.engine
        found: dict[str, str | int] = {"status": "ok", "model": engine.model_id}
        if isinstance(parallel := getattr(engine, "parallel", None), int):
            found["parallel"] = parallel  # the embedded engine: answers generated at once
        return found

    @app.get("/v1/models", dependencies=guarded, responses=error_responses(401))
    async def models(request: Request) -> ModelList:
        return ModelList(data=[ModelCard(id=request.app.state.engine.model_id)])

    @app.post("/v1/completions", response_model=None, responses=errors)
    async def completions(
        body: CompletionRequest, request: Request, key: KeyPolicy = Depends(require_api_key)
    ) -> Response:
        return await _answer(serve_completion, body, request, key)

    @app.post("/v1/chat/completions", response_model=None, responses=errors)
    async def chat_completions(
        body: ChatCompletionRequest, request: Request, key: KeyPolicy = Depends(require_api_key)
    ) -> Response:
        return await _answer(serve_chat, body, request, key)


async def _answer(serve: Any, body: Any, request: Request, key: KeyPolicy) -> Response:
    """``serve`` the request within ``key``'s quota; stopped if the client goes away."""
    state = request.app.state
    operation = "chat" if serve is serve_chat else "text_completion"
    meter = state.quota.meter(key, operation)
    answer = serve(state.engine, body, state.admission, state.limits, meter)
    try:
        return await until_disconnected(request, answer)
    except RateLimited as exc:
        state.metrics.rate_limited.labels(exc.limit).inc()
        raise
    except Overloaded:
        state.metrics.rate_limited.labels("queue").inc()
        raise

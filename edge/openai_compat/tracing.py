"""OpenTelemetry traces, configured only through the standard ``OTEL_*`` variables.

Off unless ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``) or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set,
and never when ``OTEL_SDK_DISABLED=true``; the SDK comes with the ``otel`` extra
(without it, one log line says so and nothing is traced). The exporter reads the
rest of its settings (headers, protocol, timeouts, service name) from the same
variables. Spans carry the GenAI semantic conventions (``gen_ai.*``) and the
relay's own ``relayllm.*`` attributes; the edge sends the W3C ``traceparent``
header with every cloud request, so one trace holds the device's answer and the
cloud's generation. The servers' request spans are FastAPI's own (it reads the
caller's ``traceparent``); the answer's span and relay-cloud's generation span go
under them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from functools import cache
from typing import Any

__all__ = [
    "Detached",
    "enabled",
    "extracted",
    "inject",
    "set_attributes",
    "span",
    "started",
    "tracer",
]

log = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether the ``OTEL_*`` variables ask for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter == "none":
        return False
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return bool(exporter or endpoint)


def tracer(service: str) -> Any | None:
    """The tracer (``None`` when traces are off); the first call sets up the SDK's provider
    and exporter for this process, named ``service`` unless ``OTEL_SERVICE_NAME`` says."""
    return _set_up(service) if enabled() else None


@cache
def _set_up(service: str) -> Any | None:
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("OTEL_* variables ask for traces: pip install 'relayllm[otel]'")
        return None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # not set up yet (a test may have set one)
        name = os.environ.get("OTEL_SERVICE_NAME", service)
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "console":
            exporter: Any = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    return trace.get_tracer("relayllm")


@contextmanager
def span(
    service: str,
    name: str,
    *,
    kind: str = "INTERNAL",
    attributes: Mapping[str, Any] | None = None,
    parent: Any = None,
) -> Iterator[Any | None]:
    """A span made current for the block (``None`` when traces are off); ``parent`` is a
    context (from :func:`extracted`), else the current one."""
    found = tracer(service)
    if found is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with found.start_as_current_span(name, context=parent, kind=getattr(SpanKind, kind),
                                     attributes=dict(attributes or {})) as current:  # fmt: skip
        yield current


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's ``traceparent`` to ``headers`` (when traces are on)."""
    if enabled():
        from opentelemetry import propagate

        propagate.inject(headers)


def extracted(headers: Mapping[str, str]) -> Any:
    """The trace context a request's headers carry (``None`` when traces are off)."""
    if not enabled():
        return None
    from opentelemetry import propagate

    return propagate.extract(headers)


class Detached:
    """A span of work that yields (a generator): current only around what it starts."""

    def __init__(self, span: Any) -> None:
        self.span = span

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make the span current for the block (a thread started in it inherits it)."""
        from opentelemetry import context, trace

        token = context.attach(trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            context.detach(token)

    def end(self, attributes: Mapping[str, Any]) -> None:
        self.span.set_attributes(dict(attributes))
        self.span.end()


def started(
    service: str, name: str, *, attributes: Mapping[str, Any] | None = None
) -> Detached | None:
    """A span started now and ended by :meth:`Detached.end` (``None`` when traces are off)."""
    found = tracer(service)
    return None if found is None else Detached(found.start_span(name, attributes=attributes))


def set_attributes(**attributes: Any) -> None:
    """Add ``attributes`` to the current span (when there is one)."""
    if enabled():
        from opentelemetry import trace

        trace.get_current_span().set_attributes(attributes)

"""The one telemetry set-up: tracing with OpenTelemetry, PHI-free logging."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs.phi_telemetry import SanitizingSpanProcessor, install_log_filter
from libs.settings import Settings

_configured = False
memory_exporter = InMemorySpanExporter()


def setup_telemetry(service_name: str, settings: Settings) -> None:
    """Installs the tracer provider and log format once per process (the supervisor runs many
    services in one process; they share it). Nothing leaves unsanitised (``libs/phi_telemetry``):
    the root's handlers carry the PHI log filter, and every exporter sits behind a
    SanitizingSpanProcessor."""
    global _configured
    if _configured:
        return
    _configured = True
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    install_log_filter()
    # Request lines name hosts and ids only, but one line per vendor call drowns the useful ones.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # aiosqlite's debug lines quote every statement's bound parameters (record values).
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if settings.otel_exporter == "console":
        provider.add_span_processor(SanitizingSpanProcessor(BatchSpanProcessor(ConsoleSpanExporter())))
    elif settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(SanitizingSpanProcessor(BatchSpanProcessor(OTLPSpanExporter())))
    elif settings.otel_exporter == "memory":
        provider.add_span_processor(SanitizingSpanProcessor(SimpleSpanProcessor(memory_exporter)))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    SQLAlchemyInstrumentor().instrument()


def current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""

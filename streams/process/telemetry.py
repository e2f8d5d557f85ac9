"""OpenTelemetry for one process: spans exported with OTLP/HTTP only when the standard
variables ask for it (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none).

Otherwise no tracer provider is installed, no exporter thread runs and the Kafka tracing
helpers do nothing (streams.kafka.tracing).
The exporter reads its own settings (headers, timeout, compression) from the same
standard variables; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the names
given here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from streams.kafka.tracing import name_writer, record_spans

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def exporting(env: Mapping[str, str] = os.environ) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return False
    return any(env.get(name) for name in ENDPOINTS)


def start_tracing(service: str, instance: str) -> Callable[[], None]:
    """Names this process on its records and, when exporting, installs the tracer provider;
    returns what flushes and stops it."""
    name_writer(f"{os.environ.get('OTEL_SERVICE_NAME', service)}/{instance}")
    if not exporting():
        return lambda: None
    # Imported only here: the exporter pulls in protobuf, which a process not exporting
    # has no use for.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    defaults = {"service.name": service, "service.instance.id": instance}
    resource = Resource.create({k: v for k, v in defaults.items() if k not in _from_env()})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    record_spans()
    return provider.shutdown


def _from_env() -> set[str]:
    """Resource attributes the standard variables set, which win over ours."""
    named = {"service.name"} if os.environ.get("OTEL_SERVICE_NAME") else set()
    pairs = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return named | {pair.split("=", 1)[0].strip() for pair in pairs.split(",") if "=" in pair}

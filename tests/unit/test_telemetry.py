"""When a process exports spans; that it runs no exporter when it does not; record headers."""

from __future__ import annotations

import threading

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from streams.kafka.tracing import WRITER_HEADER, context_in, headers_out, writer_of
from streams.process.telemetry import exporting, start_tracing


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
    ],
)
def test_spans_are_exported_only_when_the_standard_variables_ask(
    env: dict[str, str], expected: bool
) -> None:
    assert exporting(env) is expected


def test_without_an_endpoint_no_provider_and_no_exporter_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    stop = start_tracing("projector", "host-2")
    stop()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert not [t for t in threading.enumerate() if "Otel" in t.name]
    assert writer_of(headers_out()) == "projector/host-2"


def test_a_record_context_is_read_back_with_its_writer() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [("traceparent", parent.encode()), (WRITER_HEADER, b"gateway/h")]
    context = context_in(headers)
    assert context is not None
    span = trace.get_current_span(context).get_span_context()
    assert format(span.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert writer_of(headers) == "gateway/h"


def test_records_without_a_valid_context_have_none() -> None:
    assert context_in(None) is None
    assert context_in([(WRITER_HEADER, b"x")]) is None
    assert context_in([("traceparent", b"00-bogus-01")]) is None

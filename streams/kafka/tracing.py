"""Trace context across Kafka: W3C `traceparent`/`tracestate` in record headers, and who
wrote each record (`nexus-writer`, read by `nexus trace`).

Producers add `headers_out()` to every record: the current span's context, when there is
one, and this process's name. Consumers continue a record's trace with `record_span`
(one record, one unit of work: a command decided, a notification step) or, for a batch
folded at once, `batch_span`: one span linked to every record's context, plus a short
child span in each record's own trace so that a request's trace reaches the read model.

Until `record_spans()` is called (streams.process.telemetry does when it installs a tracer
provider) none of this touches OpenTelemetry: records carry only their writer, and the
helpers yield the API's invalid span, so that tracing off costs next to nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind

WRITER_HEADER = "nexus-writer"
TRACE_FIELDS = frozenset({"traceparent", "tracestate"})
MAX_LINKS = 128  # a span's links are kept in memory until it ends; batches can be larger
Headers = Sequence[tuple[str, bytes | None]] | None

tracer = trace.get_tracer("nexus")
_writer: list[tuple[str, bytes]] = []
_recording = False


def record_spans() -> None:
    global _recording
    _recording = True


def recording() -> bool:
    return _recording


def name_writer(name: str) -> None:
    """This process's name on every record it writes, e.g. `command-processor/host-2`."""
    _writer[:] = [(WRITER_HEADER, name.encode())]


def headers_out() -> list[tuple[str, bytes]]:
    """The headers for a record written now: the current trace context and the writer."""
    if not _recording:
        return _writer
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()] + _writer


def context_in(headers: Headers) -> Context | None:
    """The trace context a record carries, if any."""
    carrier = {
        key: value.decode("ascii", "replace")
        for key, value in headers or ()
        if key in TRACE_FIELDS and value is not None
    }
    if "traceparent" not in carrier:
        return None
    context = propagate.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def header_list(headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None) -> Headers:
    """Faust hands a record's headers over as a list of pairs or as a mapping."""
    if isinstance(headers, Mapping):
        return list(headers.items())
    return headers


def writer_of(headers: Headers) -> str | None:
    for key, value in headers or ():
        if key == WRITER_HEADER and value is not None:
            return value.decode("utf-8", "replace")
    return None


@contextmanager
def record_span(name: str, headers: Headers, kind: SpanKind = SpanKind.CONSUMER) -> Iterator[Span]:
    """A span for work on one record, in the record's trace (a new trace if it has none)."""
    if not _recording:
        yield INVALID_SPAN
        return
    with tracer.start_as_current_span(name, context=context_in(headers), kind=kind) as span:
        yield span


@contextmanager
def batch_span(name: str, batch: Iterable[Headers]) -> Iterator[Span]:
    """A span for a batch, linked to its records' contexts rather than given one as a parent;
    each record with a context gets a child span there, linked back, ending with the batch."""
    if not _recording:
        yield INVALID_SPAN
        return
    contexts = [context for headers in batch if (context := context_in(headers)) is not None]
    links = [Link(trace.get_current_span(c).get_span_context()) for c in contexts[:MAX_LINKS]]
    with tracer.start_as_current_span(name, links=links, kind=SpanKind.CONSUMER) as span:
        back = [Link(span.get_span_context())]
        children = [tracer.start_span(name, context=c, links=back) for c in contexts]
        try:
            yield span
        finally:
            for child in children:
                child.end()

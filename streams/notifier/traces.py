"""The trace each saga belongs to: the context its request arrived with, so that the saga's
steps (saga events on Kafka) and its delivery attempts (with the `traceparent` a webhook
receives) join the trace of the request that started it.

Kept in memory only: a saga taken over from the log after a restart or rebalance goes on
in new traces, each step its own.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from contextlib import contextmanager

from confluent_kafka import Message
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from streams.kafka.tracing import context_in, headers_out, tracer


class SagaTraces:
    def __init__(self) -> None:
        self._contexts: dict[str, Context] = {}

    def note(self, requests: Iterable[Message]) -> None:
        """Requests are keyed by their notification id, which is their saga's id."""
        for message in requests:
            key = message.key()
            if key and (context := context_in(message.headers())) is not None:
                self._contexts[key.decode() if isinstance(key, bytes) else key] = context

    def headers(self, saga_id: str, step: str) -> list[tuple[str, bytes]]:
        """Headers for a saga event: a span for the step, in the saga's trace when known."""
        context = self._contexts.get(saga_id)
        if context is None:
            return headers_out()
        with tracer.start_as_current_span(step, context=context, kind=SpanKind.PRODUCER):
            return headers_out()

    @contextmanager
    def span(self, saga_id: str, name: str) -> Iterator[Span]:
        """A span (current on this thread) for work on a saga, in its trace when known."""
        context = self._contexts.get(saga_id)
        with tracer.start_as_current_span(name, context=context, kind=SpanKind.CLIENT) as span:
            yield span

    def keep_only(self, sagas: Container[str]) -> None:
        for saga_id in [s for s in self._contexts if s not in sagas]:
            del self._contexts[saga_id]

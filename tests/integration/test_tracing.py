"""Tracing across real processes: spans exported with OTLP/HTTP to a receiver in the test.

A client's `traceparent` starts the trace; the gateway continues it, the record headers
carry it through Kafka, and every process that works on the request adds its spans to the
same trace, down to the read model and the webhook receiver.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest
from notifier_helpers import webhook_user
from otlp_receiver import Spans, otlp_receiver
from stack import api_client, prepared, running
from webhook_sink import SinkLog, wait_until

from infra.config.settings import Settings

SERVICES = ("command-processor", "projector", "gateway", "notifier")
SAMPLE = {"user": {"name": "Ada", "email": "ada@example.com"}, "app": {"name": "N", "url": "u"}}
EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # ms: spans reach the receiver quickly


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Spans, str]]:
    with otlp_receiver() as running_receiver:
        yield running_receiver


@pytest.fixture(scope="module")
def stack(
    module_settings: Settings, sink: tuple[SinkLog, int], receiver: tuple[Spans, str]
) -> Iterator[Settings]:
    settings = prepared(module_settings, delivery_allow_list=f"127.0.0.1:{sink[1]}")
    exported = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver[1], **EXPORT}
    before = {name: os.environ.get(name) for name in exported}
    os.environ.update(exported)  # the children inherit it (infra.local.service_env)
    try:
        with running(settings, SERVICES) as started:
            yield started["gateway"].settings
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def spans_named(spans: Spans, trace_id: str, wanted: dict[str, set[str]]) -> None:
    """Waits until, in the trace, each service in `wanted` exported spans of those names."""

    def missing() -> dict[str, set[str]]:
        by_service: dict[str, set[str]] = {}
        for span in spans.in_trace(trace_id):
            by_service.setdefault(span.service, set()).add(span.name)
        return {s: names - by_service.get(s, set()) for s, names in wanted.items()}

    deadline = time.monotonic() + 30
    while any(missing().values()):
        if time.monotonic() > deadline:
            pytest.fail(f"spans missing from trace {trace_id}: {missing()}")
        time.sleep(0.1)


def registered_in_a_trace(stack: Settings) -> str:
    """Registers a user in a trace the client starts; returns the trace id."""
    trace_id, parent = traceparent()
    with api_client(stack, "ops", ["users:write", "users:admin"]) as api:
        body = {"email": f"{trace_id[:8]}@example.com", "name": "Traced"}
        headers = {"traceparent": parent, "Prefer": "wait=15"}
        created = api.post("/api/v1/users", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return trace_id


def test_one_command_is_one_trace_from_gateway_to_read_model(
    stack: Settings, receiver: tuple[Spans, str]
) -> None:
    trace_id = registered_in_a_trace(stack)
    wanted = {
        "gateway": {"POST /api/v1/users", f"{stack.topic('commands')} publish"},
        "command-processor": {"decide command"},
        "projector": {"users apply"},
    }
    spans_named(receiver[0], trace_id, wanted)


def test_a_batch_span_links_the_records_it_folded(
    stack: Settings, receiver: tuple[Spans, str]
) -> None:
    trace_id = registered_in_a_trace(stack)

    processed = f"{stack.topic('commands')} process"

    def batch_spans() -> list[str]:
        """Each process exports on its own schedule: wait for the command processor's."""
        names = [
            s.name for s in receiver[0].snapshot() if trace_id in s.links and s.trace_id != trace_id
        ]
        return names if processed in names else []

    wait_until(batch_spans, 30, "the command processor's batch span linked to the trace")


def test_a_notification_is_one_trace_down_to_the_webhook_receiver(
    stack: Settings, receiver: tuple[Spans, str], sink: tuple[SinkLog, int]
) -> None:
    log, port = sink
    with api_client(stack, "ops", ["users:read", "users:write", "users:admin"]) as api:
        user_id = webhook_user(api, f"http://127.0.0.1:{port}/traced")
    trace_id, parent = traceparent()
    with api_client(stack, user_id, ["notifications:write"]) as api:
        body = {"user_id": user_id, "template": "welcome", "data": SAMPLE}
        sent = api.post("/api/v1/notifications", json=body, headers={"traceparent": parent})
    assert sent.status_code == 202, sent.text
    notification_id = sent.json()["notification_id"]

    def received() -> list[str | None]:
        keys = (r for r in log.snapshot() if r.key and r.key.startswith(notification_id))
        return [r.traceparent for r in keys]

    [webhook_parent] = wait_until(received, 30, "the webhook")
    assert webhook_parent is not None and webhook_parent.split("-")[1] == trace_id
    steps = {f"notification notification.{step}" for step in ("requested", "delivered")}
    wanted = {
        "gateway": {"POST /api/v1/notifications"},
        "notifier": {"deliver webhook", *steps},
    }
    spans_named(receiver[0], trace_id, wanted)

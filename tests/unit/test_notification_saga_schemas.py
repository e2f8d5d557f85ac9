"""The notification and channel-circuit event types against their Avro schemas."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from aggregates import codec
from sagas.circuit.events import (
    ChannelCircuitClosed,
    ChannelCircuitHalfOpened,
    ChannelCircuitOpened,
    ChannelCircuitProbeStarted,
    CircuitEvent,
)
from sagas.notification.events import (
    DigestItem,
    NotificationDigested,
    NotificationDigestItemForwarded,
    NotificationEvent,
    NotificationRendered,
    NotificationRequested,
    RenderedContent,
    Route,
)
from sagas.notification.request import DigestItemSubmitted, NotificationSubmitted
from schemas.codec import AvroCodec
from schemas.registry import SCHEMA_ROOT, default_registry

TYPES: dict[str, Any] = {
    cls.TYPE: cls
    for cls in (
        *get_args(NotificationEvent),
        *get_args(CircuitEvent),
        NotificationSubmitted,
        DigestItemSubmitted,
    )
}
ITEM = DigestItem("n-1", "activity", "Ann commented")
PREFIXES = ("notification.", "channel.")
SAMPLES: list[Any] = [
    NotificationRequested(
        "n-1", "u-1", "welcome", None, (Route(("push", "email")),), "{}", None, False, 1, 2, 3, 4, 5
    ),
    NotificationRequested(
        "d-1", "u-1", "digest", None, (Route(("email",)),), "{}", None, False, 1, 2, 3, 4, 5, 6, "x"
    ),
    NotificationRendered((RenderedContent("email", "blob/1", 120),)),
    NotificationDigested("d-1", 60_000, "Ann commented"),
    NotificationDigestItemForwarded(ITEM, "d-2", 120_000),
    DigestItemSubmitted("d-1", "u-1", 60_000, ITEM),
    ChannelCircuitOpened(5, 1_000),
    ChannelCircuitHalfOpened(),
    ChannelCircuitProbeStarted(2_000),
    ChannelCircuitClosed(),
    NotificationSubmitted("n-1", "u-1", "welcome", ("email",), "{}", "k-1", "alice", 7),
]


def test_every_saga_event_type_has_a_schema_and_back() -> None:
    names = {n for n in default_registry().names("events") if n.startswith(PREFIXES)}
    assert names == set(TYPES)


@pytest.mark.parametrize("name", sorted(TYPES))
def test_schema_starts_with_the_event_envelope_then_data(name: str) -> None:
    envelope = json.loads((SCHEMA_ROOT / "envelopes" / "event.avsc").read_text())["fields"]
    raw = default_registry().latest(name).raw
    assert raw["fields"][: len(envelope)] == envelope
    assert [f["name"] for f in raw["fields"][len(envelope) :]] == ["data"]
    assert raw["namespace"] == "nexus.events"
    assert raw["fields"][-1]["type"]["name"] == raw["name"] + "Data"


@pytest.mark.parametrize("name", sorted(TYPES))
def test_python_fields_match_the_schema(name: str) -> None:
    raw = default_registry().latest(name).raw
    fields = [f["name"] for f in raw["fields"][-1]["type"]["fields"]]
    assert [f.name for f in dataclasses.fields(TYPES[name])] == fields


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).TYPE)
def test_events_roundtrip_through_avro_and_the_data_codec(event: Any) -> None:
    record = {
        "event_id": "e-1",
        "type": event.TYPE,
        "aggregate_type": event.TYPE.split(".")[0],
        "aggregate_id": "a-1",
        "aggregate_version": 1,
        "occurred_at": datetime(2026, 1, 2, tzinfo=UTC),
        "correlation_id": "c-1",
        "causation_id": None,
        "actor": "saga",
        "data": codec.to_data(event),
    }
    avro = AvroCodec()
    _, decoded = avro.decode(avro.encode(event.TYPE, record))
    assert codec.from_data(type(event), decoded["data"]) == event

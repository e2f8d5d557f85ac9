"""The causal tree of one request, built from records as the topics hold them (no Kafka)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.cli.trace import tree_lines
from projections.causal_chain import Entry, Node, entry, trace, trace_json
from streams.causal_log import TRACED_TOPICS
from streams.kafka.topics import LOGICAL_TOPICS

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
C = "corr-1"  # the request's correlation id
CMD, EVT, REQ, NID = "cmd-1", "evt-1", "req-1", "n-welcome"


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def command(command_id: str, correlation_id: str, ms: int) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "type": "RegisterUser",
        "aggregate_type": "user",
        "aggregate_id": "ada",
        "expected_version": None,
        "issued_at": at(ms),
        "correlation_id": correlation_id,
        "actor": "ada",
        "actor_scopes": [],
        "data": {"email": "ada@example.com", "name": "Ada", "locale": None},
    }


def outcome(command_id: str, correlation_id: str, ms: int) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "command_type": "RegisterUser",
        "aggregate_type": "user",
        "aggregate_id": "ada",
        "correlation_id": correlation_id,
        "status": "accepted",
        "version": 1,
        "position": "3-0",
        "event_ids": [EVT],
        "error_code": None,
        "error_kind": None,
        "error_message": None,
        "decided_at": at(ms),
    }


def event(
    event_id: str, type_: str, aggregate: str, version: int, ms: int, **links: Any
) -> dict[str, Any]:
    kind = "notification" if type_.startswith("notification.") else "user"
    return {
        "event_id": event_id,
        "type": type_,
        "aggregate_type": kind,
        "aggregate_id": aggregate,
        "aggregate_version": version,
        "occurred_at": at(ms),
        "correlation_id": links.get("correlation_id", aggregate if kind == "notification" else C),
        "causation_id": links.get("causation_id"),
        "actor": "test",
        "data": links.get("data", {}),
    }


def saga(version: int, type_: str, ms: int, saga_id: str = NID, **data: Any) -> dict[str, Any]:
    cause = REQ if version == 1 and saga_id == NID else None
    return event(
        f"{saga_id}-v{version}", type_, saga_id, version, ms, causation_id=cause, data=data
    )


def dead_letter(reason: str, source: tuple[str, int, int], ms: int) -> dict[str, Any]:
    return {
        "source_topic": source[0],
        "source_partition": source[1],
        "source_offset": source[2],
        "source_key": None,
        "payload": b"",
        "reason": reason,
        "detail": "why",
        "consumer": "notifier",
        "failed_at": at(ms),
    }


REQUEST_DATA = {"template": "welcome", "user_id": "ada", "requested_by": "workflow:welcome"}
LOG: list[tuple[str, str, dict[str, Any], str | None]] = [  # topic, schema, record, writer
    ("commands", "RegisterUser", command(CMD, C, 0), "gateway-1"),
    ("events", "user.registered", event(EVT, "user.registered", "ada", 1, 20, causation_id=CMD),
     "command-processor-1"),
    ("outcomes", "command.outcome", outcome(CMD, C, 20), "command-processor-1"),
    ("notification-requests", "notification.submitted",
     event(REQ, "notification.submitted", NID, 0, 300, correlation_id=C, causation_id=EVT,
           data=REQUEST_DATA), "workflows-1"),
    ("notifications", "notification.requested", saga(1, "notification.requested", 350), None),
    ("notifications", "notification.rendered", saga(2, "notification.rendered", 350), None),
    ("notifications", "notification.attempt_started",
     saga(3, "notification.attempt_started", 350, channel="webhook", attempt=1), None),
    ("notifications", "notification.delivered",
     saga(4, "notification.delivered", 420, channel="webhook", attempt=1), None),
    ("notifications", "notification.completed", saga(5, "notification.completed", 420), None),
    # Someone else's request and saga, and a circuit event: in no trace of C.
    ("commands", "RegisterUser", command("cmd-2", "corr-2", 5), "gateway-1"),
    ("notifications", "notification.requested", saga(1, "notification.requested", 360, "n-2"),
     None),
    ("notifications", "channel.circuit_opened",
     event("c-1", "channel.circuit_opened", "channel:webhook", 0, 400,
           correlation_id="channel:webhook"), None),
    ("snapshots", "aggregate.snapshot", {"partition": 0}, None),
]  # fmt: skip


def entries(log: list[tuple[str, str, dict[str, Any], str | None]] = LOG) -> list[Entry]:
    made = [entry(schema, record, (topic, 0, i), by) for i, (topic, schema, record, by) in
            enumerate(log)]  # fmt: skip
    return [e for e in made if e is not None]


def shape(nodes: tuple[Node, ...]) -> list[Any]:
    return [(n.entry.type, shape(n.children)) if n.children else n.entry.type for n in nodes]


DRAWN = re.compile(r"^[│├└─ ]*\S+")  # the tree drawing and the type, before the facts
SAGA_STEPS = [
    "notification.requested",
    "notification.rendered",
    "notification.attempt_started",
    "notification.delivered",
    "notification.completed",
]
EXPECTED = [
    (
        "RegisterUser",
        [
            ("user.registered", [("notification.submitted", SAGA_STEPS)]),
            "command.outcome",
        ],
    )
]


def test_a_correlation_id_gives_command_event_request_and_saga_by_causation() -> None:
    found = trace(entries(), C)

    assert found is not None and found.correlation_id == C
    assert shape(found.roots) == EXPECTED
    assert found.size == 9


def test_a_command_id_a_notification_id_and_an_event_id_name_the_same_request() -> None:
    for asked in (CMD, NID, EVT, f"{NID}-v4"):
        found = trace(entries(), asked)
        assert found is not None and found.correlation_id == C, asked
        assert shape(found.roots) == EXPECTED


def test_an_unknown_id_has_no_trace() -> None:
    assert trace(entries(), "nobody") is None
    assert trace([], C) is None


def test_records_nothing_causes_are_left_out() -> None:
    assert entry("aggregate.snapshot", {"partition": 0}, ("snapshots", 0, 0), None) is None
    found = trace(entries(), C)
    assert found is not None
    ids = {n["id"] for n in _walk(trace_json(found)["tree"])}
    assert not ids & {"cmd-2", "n-2-v1", "c-1"}


def test_a_dead_letter_hangs_under_the_record_it_holds() -> None:
    held = event("req-bad", "notification.submitted", "n-bad", 0, 500, correlation_id=C,
                 causation_id=EVT, data={"template": "nope"})  # fmt: skip
    letter = dead_letter("invalid", ("t.notification-requests", 0, 9), 510)
    made = entry("dead_letter", letter, ("deadletter", 0, 0), "notifier-1",
                 held=("notification.submitted", held))  # fmt: skip
    opaque = entry("dead_letter", dead_letter("not_avro", ("t.events", 0, 3), 520),
                   ("deadletter", 0, 1), None)  # fmt: skip
    assert made is not None and opaque is not None
    log = [*LOG, ("notification-requests", "notification.submitted", held, "workflows-1")]

    found = trace([*entries(log), made, opaque], C)

    assert found is not None
    [registered] = [n for n in found.roots[0].children if n.entry.type == "user.registered"]
    [_, bad] = registered.children
    assert bad.entry.id == "req-bad"
    assert [(c.entry.kind, dict(c.entry.facts)["reason"]) for c in bad.children] == [
        ("dead_letter", "invalid")
    ]
    assert "dead_letter:deadletter/0/1" not in {n["id"] for n in _walk(trace_json(found)["tree"])}


def test_a_digest_item_hangs_under_the_notification_it_carries_and_brings_its_digest() -> None:
    item = event("item-1", "notification.digest_item_submitted", "digest-1", 0, 500,
                 correlation_id="digest-1", causation_id=NID)  # fmt: skip
    log = [
        *LOG,
        ("notification-requests", "notification.digest_item_submitted", item, None),
        ("notifications", "notification.digest_item_added",
         saga(1, "notification.digest_item_added", 510, "digest-1"), None),
    ]  # fmt: skip

    found = trace(entries(log), C)

    assert found is not None
    [request] = [n for n in _walk_nodes(found.roots) if n.entry.id == REQ]
    [digest] = [n for n in request.children if n.entry.id == "item-1"]
    assert shape(digest.children) == ["notification.digest_item_added"]


def test_siblings_are_in_time_order_then_log_order_whatever_order_they_come_in() -> None:
    found = trace(list(reversed(entries())), C)

    assert found is not None
    assert shape(found.roots) == EXPECTED  # saga steps at 350 ms x3 and 420 ms x2: by offset


def test_the_json_is_a_nested_tree_naming_each_writer() -> None:
    found = trace(entries(), C)
    assert found is not None

    document = trace_json(found)

    assert (document["id"], document["correlation_id"], document["records"]) == (C, C, 9)
    [root] = document["tree"]
    assert {k: root[k] for k in ("id", "kind", "type", "at", "writer", "topic", "offset")} == {
        "id": CMD,
        "kind": "command",
        "type": "RegisterUser",
        "at": "2026-03-01T09:00:00.000+00:00",
        "writer": "gateway-1",
        "topic": "commands",
        "offset": 0,
    }
    assert root["facts"] == {"aggregate": "user/ada", "actor": "ada"}
    delivered = next(n for n in _walk(document["tree"]) if n["type"] == "notification.delivered")
    assert delivered["writer"] == "?"
    assert delivered["facts"] == {"version": "4", "channel": "webhook", "attempt": "1"}


def test_the_text_tree_draws_each_record_under_its_cause() -> None:
    found = trace(entries(), C)
    assert found is not None

    lines = tree_lines(found)

    assert lines[0] == f"trace {C}: 9 records"
    assert lines[1] == (
        "2026-03-01T09:00:00.000+00:00  gateway-1            command      RegisterUser"
        "  aggregate=user/ada actor=ada"
    )
    column = lines[1].index("RegisterUser")
    drawn = [DRAWN.findall(line[column:])[0] for line in lines[1:]]
    assert drawn == [
        "RegisterUser",
        "├─ user.registered",
        "│  └─ notification.submitted",
        "│     ├─ notification.requested",
        "│     ├─ notification.rendered",
        "│     ├─ notification.attempt_started",
        "│     ├─ notification.delivered",
        "│     └─ notification.completed",
        "└─ command.outcome",
    ]


def test_the_traced_topics_are_platform_topics_without_analytics_and_snapshots() -> None:
    assert set(TRACED_TOPICS) < set(LOGICAL_TOPICS)
    assert {"commands", "outcomes", "events", "deadletter"} <= set(TRACED_TOPICS)
    assert {"notification-requests", "notifications"} <= set(TRACED_TOPICS)
    assert not {"analytics", "analytics-rejected", "snapshots"} & set(TRACED_TOPICS)


def _walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for n in nodes for x in (n, *_walk(n["children"]))]


def _walk_nodes(nodes: tuple[Node, ...]) -> list[Node]:
    return [x for n in nodes for x in (n, *_walk_nodes(n.children))]

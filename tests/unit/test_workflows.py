"""Workflows: the config language, its errors, and planning requests from events (pure)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from infra.config.settings import PROJECT_ROOT
from sagas.rendering import DEFAULT_TEMPLATE_ROOT, TemplateRenderer
from sagas.workflows import (
    Plan,
    Row,
    WorkflowConfigError,
    idempotency_key,
    notification_id,
    parse_workflows,
    plan,
)
from sagas.workflows.config import DataSpec
from sagas.workflows.expressions import EventRef, Expression, Joined, LookupRef, Node
from schemas.registry import default_registry
from schemas.timestamps import epoch_ms

TEMPLATES = TemplateRenderer(DEFAULT_TEMPLATE_ROOT).templates()
SHIPPED = parse_workflows(
    (PROJECT_ROOT / "infra" / "config" / "workflows.toml").read_text(), templates=TEMPLATES
)
OCCURRED = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
SETTINGS: dict[str, str | None] = {
    "app_name": "Nexus",
    "app_url": "https://nexus.example.com",
    "ops_user_id": None,
}


class FakeLookups:
    """Rows by id, counting how often each is asked for."""

    def __init__(self, users: Mapping[str, Row], workspaces: Mapping[str, Row]) -> None:
        self.users, self.workspaces = users, workspaces
        self.asked: Counter[str] = Counter()

    def user(self, user_id: str) -> Row | None:
        self.asked[f"user:{user_id}"] += 1
        return self.users.get(user_id)

    def workspace(self, workspace_id: str) -> Row | None:
        self.asked[f"workspace:{workspace_id}"] += 1
        return self.workspaces.get(workspace_id)


def user_row(user_id: str, name: str, locale: str | None = None) -> Row:
    email = f"{name.split()[0].lower()}@example.com"
    return {"user_id": user_id, "email": email, "name": name, "locale": locale, "status": "active"}


LOOKUPS_ROWS: dict[str, Any] = {
    "users": {
        "u-ada": user_row("u-ada", "Ada Lovelace", "en"),
        "u-grace": user_row("u-grace", "Grace Hopper"),
    },
    "workspaces": {
        "w-1": {"workspace_id": "w-1", "name": "Engines", "owner_id": "u-ada", "status": "active"}
    },
}


@pytest.fixture
def lookups() -> FakeLookups:
    return FakeLookups(LOOKUPS_ROWS["users"], LOOKUPS_ROWS["workspaces"])


def event(
    type_: str, aggregate_id: str, data: dict[str, Any], event_id: str = "e-1"
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": type_,
        "aggregate_type": type_.split(".")[0],
        "aggregate_id": aggregate_id,
        "aggregate_version": 2,
        "occurred_at": OCCURRED,
        "correlation_id": "corr-1",
        "causation_id": "cmd-1",
        "actor": "tester",
        "data": data,
    }


def one_workflow(**fields: str) -> str:
    base = {
        "name": "w",
        "on": "user.registered",
        "template": "welcome",
        "recipient": "event.aggregate_id",
        **fields,
    }
    return "[[workflow]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in base.items())


def planned(outcome: Plan) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.user_id, r.template, json.loads(r.data)) for r in outcome.requests]


# --- the configuration ---------------------------------------------------------------------


def test_the_shipped_workflows_are_the_four_of_issue_4() -> None:
    assert [(w.name, w.on, w.template) for w in SHIPPED] == [
        ("welcome", "user.registered", "welcome"),
        ("member-added", "workspace.member_added", "workspace_member_added"),
        ("member-added-owner", "workspace.member_added", "workspace_member_added_owner"),
        ("anomaly-alert", "analytics.anomaly_detected", "anomaly_alert"),
    ]


def leaves(spec: DataSpec) -> Iterator[Expression]:
    for value in spec.values():
        yield from [value] if isinstance(value, Expression) else leaves(value)


def event_paths(node: Node) -> Iterator[tuple[str, ...]]:
    match node:
        case EventRef(path):
            yield path
        case LookupRef(_, key, _):
            yield from event_paths(key)
        case Joined(parts):
            for part in parts:
                yield from event_paths(part)


def test_shipped_workflows_read_only_data_fields_their_event_schemas_have() -> None:
    registry = default_registry()
    for workflow in SHIPPED:
        if workflow.on not in registry.names():
            continue  # analytics.anomaly_detected: its schema comes with issue 3
        data_type = next(
            f for f in registry.latest(workflow.on).parsed["fields"] if f["name"] == "data"
        )
        fields = {f["name"] for f in data_type["type"]["fields"]}
        nodes = [workflow.recipient.node, *(e.node for e in leaves(workflow.data))]
        if workflow.when is not None:
            nodes += [workflow.when.left, workflow.when.right]
        for node in nodes:
            for path in event_paths(node):
                if path[0] == "data":
                    assert path[1] in fields, f"{workflow.name}: event.{'.'.join(path)}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[workflow]\n", "workflows file: not valid TOML"),
        ("[other]\n", "workflows file: unknown top-level keys ['other']"),
        ("workflow = 3\n", "workflows file: workflow: must be an array of tables"),
        (one_workflow(extra="x"), "workflow 'w': unknown keys ['extra']"),
        (one_workflow(template=""), "workflow 'w': template: is required"),
        ("[[workflow]]\non = 'user.registered'\n", "workflow #1: name: is required"),
        (one_workflow(name="Bad Name"), "workflow 'Bad Name': name: must be 1-64"),
        (one_workflow(on="registered"), "workflow 'w': on: 'registered' is not an event type"),
        (one_workflow(template="nope"), "workflow 'w': template: no template 'nope'"),
        (
            one_workflow(recipient="settings.secret"),
            "recipient: 'settings.secret': unknown setting",
        ),
        (
            one_workflow(recipient="user(event.aggregate_id)"),
            "recipient: 'user(event.aggregate_id)': user(...) is a row",
        ),
        (
            one_workflow(recipient="user(event.aggregate_id).channels"),
            "user rows have no field 'channels'",
        ),
        (
            one_workflow(recipient="event.nope"),
            "recipient: 'event.nope': event has no field 'nope'",
        ),
        (one_workflow(recipient="event.aggregate_id.x"), "event.aggregate_id has no fields"),
        (one_workflow(recipient="event.aggregate_id event"), "unexpected 'event'"),
        (one_workflow(recipient="'unterminated"), 'unexpected "\'unterminated"'),
        (one_workflow(recipient="workspace(event.aggregate_id"), "expected ')' at the end"),
        (one_workflow(recipient="request.user"), "unknown reference 'request'"),
        (
            one_workflow(when="event.type"),
            "workflow 'w': when: 'event.type': expected == or != at the end",
        ),
        (
            one_workflow(when="event.type ~ 'x' = 'y'"),
            """workflow 'w': when: "event.type ~ 'x' = 'y'": unexpected "= 'y'\"""",
        ),
        (one_workflow() + "data = 'x'\n", "workflow 'w': data: must be a table"),
        (
            one_workflow() + "[workflow.data]\nuser.name = 'settings.nope'\n",
            "workflow 'w': data.user.name: 'settings.nope'",
        ),
        (
            one_workflow() + "[workflow.data]\nuser.age = 3\n",
            "workflow 'w': data.user.age: must be an expression string, not int",
        ),
        (
            one_workflow() + "channels = ['email', 'pigeon']\n",
            "workflow 'w': channels: unknown channels ['pigeon']",
        ),
        (one_workflow() + one_workflow(), "workflow 'w': name: is used twice"),
    ],
)
def test_config_errors_name_the_workflow_and_the_field(text: str, message: str) -> None:
    with pytest.raises(WorkflowConfigError) as caught:
        parse_workflows(text, templates=TEMPLATES)

    assert message in str(caught.value)


def test_templates_are_checked_only_when_given() -> None:
    [workflow] = parse_workflows(one_workflow(template="later"))

    assert workflow.template == "later"


def test_an_empty_file_has_no_workflows() -> None:
    assert parse_workflows("# nothing yet\n") == []


# --- planning ------------------------------------------------------------------------------


def test_user_registered_asks_for_a_welcome(lookups: FakeLookups) -> None:
    registered = event("user.registered", "u-ada", {"email": "ada@example.com", "name": "Ada"})

    outcome = plan(SHIPPED, registered, lookups, SETTINGS)

    [request] = outcome.requests
    assert outcome.skipped == ()
    assert (request.user_id, request.template, request.channels) == ("u-ada", "welcome", None)
    assert json.loads(request.data) == {
        "user": {"name": "Ada Lovelace", "email": "ada@example.com", "locale": "en"},
        "app": {"name": "Nexus", "url": "https://nexus.example.com"},
    }
    assert request.requested_by == "workflow:welcome"
    assert request.submitted_at == epoch_ms(OCCURRED) == 1735787045678
    assert request.idempotency_key == "e-1/welcome/u-ada"
    assert request.notification_id == notification_id("welcome", "e-1", "u-ada")


def test_member_added_notifies_the_member_and_the_owner(lookups: FakeLookups) -> None:
    added = event("workspace.member_added", "w-1", {"user_id": "u-grace", "role": "admin"})

    outcome = plan(SHIPPED, added, lookups, SETTINGS)

    common = {
        "member": {"name": "Grace Hopper", "email": "grace@example.com"},
        "owner": {"name": "Ada Lovelace"},
        "workspace": {"id": "w-1", "name": "Engines", "url": "https://nexus.example.com/w/w-1"},
        "role": "admin",
    }
    assert planned(outcome) == [
        ("u-grace", "workspace_member_added", common),
        ("u-ada", "workspace_member_added_owner", common),
    ]
    assert [r.requested_by for r in outcome.requests] == [
        "workflow:member-added",
        "workflow:member-added-owner",
    ]
    assert max(lookups.asked.values()) == 1, "one event reads each row once"


def test_the_owner_added_by_creating_the_workspace_is_not_notified(lookups: FakeLookups) -> None:
    added = event("workspace.member_added", "w-1", {"user_id": "u-ada", "role": "owner"})

    assert plan(SHIPPED, added, lookups, SETTINGS) == Plan((), ())


def test_a_member_not_registered_skips_both_with_a_reason(lookups: FakeLookups) -> None:
    added = event("workspace.member_added", "w-1", {"user_id": "u-ghost", "role": "member"})

    outcome = plan(SHIPPED, added, lookups, SETTINGS)

    assert outcome.requests == ()
    assert [(s.workflow, s.reason) for s in outcome.skipped] == [
        ("member-added", "user 'u-ghost' not found"),
        ("member-added-owner", "user 'u-ghost' not found"),
    ]


def test_an_unknown_workspace_or_owner_skips_with_a_reason(lookups: FakeLookups) -> None:
    lookups.workspaces = {"w-2": {**LOOKUPS_ROWS["workspaces"]["w-1"], "owner_id": "u-gone"}}

    def reasons(workspace: str) -> set[str]:
        added = event("workspace.member_added", workspace, {"user_id": "u-grace", "role": "admin"})
        return {skipped.reason for skipped in plan(SHIPPED, added, lookups, SETTINGS).skipped}

    assert reasons("w-1") == {"workspace 'w-1' not found"}
    assert reasons("w-2") == {"user 'u-gone' (owner of 'w-2') not found"}


ANOMALY = {
    "event_type": "page.view",
    "granularity": "minute",
    "window_start": datetime(2025, 1, 1, 11, 59, tzinfo=UTC),
    "window_end": datetime(2025, 1, 1, 12, 0, tzinfo=UTC),
    "direction": "spike",
    "expected": 1200.0,
    "observed": 4210.5,
    "score": 7.3,
    "severity": "critical",
    "breakdown_property": "page",
    "breakdown_value": "/pricing",
    "breakdown_expected": 360.0,
    "breakdown_observed": 3370.5,
    "detected_at": datetime(2025, 1, 1, 12, 0, tzinfo=UTC),
}


def test_an_anomaly_alerts_the_ops_user(lookups: FakeLookups) -> None:
    detected = event("analytics.anomaly_detected", "a-1", ANOMALY)

    outcome = plan(SHIPPED, detected, lookups, {**SETTINGS, "ops_user_id": "u-ops"})

    assert planned(outcome) == [
        (
            "u-ops",
            "anomaly_alert",
            {
                "anomaly": {
                    "id": "e-1",
                    "metric": "page.view",
                    "value": 4210.5,
                    "expected": 1200.0,
                    "score": 7.3,
                    "window": "2025-01-01T11:59:00.000Z",
                    "detected_at": "2025-01-01T12:00:00.000Z",
                },
                "severity": "critical",
                "dashboard_url": "https://nexus.example.com/dashboard#anomalies",
            },
        )
    ]
    assert lookups.asked == {}


def test_an_anomaly_without_an_ops_user_is_skipped_with_a_reason(lookups: FakeLookups) -> None:
    detected = event("analytics.anomaly_detected", "a-1", ANOMALY)

    outcome = plan(SHIPPED, detected, lookups, SETTINGS)

    assert outcome.requests == ()
    assert [(s.workflow, s.reason) for s in outcome.skipped] == [
        ("anomaly-alert", "recipient settings.ops_user_id is unset")
    ]


def test_a_missing_event_field_skips_with_a_reason(lookups: FakeLookups) -> None:
    detected = event("analytics.anomaly_detected", "a-1", {"event_type": "x"})

    [skipped] = plan(SHIPPED, detected, lookups, {**SETTINGS, "ops_user_id": "u-ops"}).skipped

    assert skipped.reason == "the event has no data.observed"


def test_an_event_no_workflow_reacts_to_asks_for_nothing(lookups: FakeLookups) -> None:
    renamed = event("workspace.renamed", "w-1", {"name": "x"})

    assert plan(SHIPPED, renamed, lookups, SETTINGS) == Plan((), ())
    assert lookups.asked == {}


@pytest.mark.parametrize("name", [w.name for w in SHIPPED])
def test_what_a_shipped_workflow_plans_renders_on_every_channel(
    lookups: FakeLookups, name: str
) -> None:
    [workflow] = [w for w in SHIPPED if w.name == name]
    data = (
        ANOMALY if workflow.on.startswith("analytics") else {"user_id": "u-grace", "role": "member"}
    )
    source = event(workflow.on, "w-1" if "member" in name else "u-ada", data)
    renderer = TemplateRenderer(DEFAULT_TEMPLATE_ROOT)

    [request] = plan([workflow], source, lookups, {**SETTINGS, "ops_user_id": "u-ops"}).requests

    for channel in renderer.channels(request.template):
        renderer.render(request.template, channel, json.loads(request.data))


# --- ids -----------------------------------------------------------------------------------


def test_planning_again_asks_for_the_same_notifications(lookups: FakeLookups) -> None:
    added = event("workspace.member_added", "w-1", {"user_id": "u-grace", "role": "admin"})

    assert plan(SHIPPED, added, lookups, SETTINGS) == plan(SHIPPED, added, lookups, SETTINGS)


def test_ids_are_fixed_forever() -> None:
    """Changing the derivation would notify again for every replayed event."""
    assert notification_id("welcome", "e-1", "u-ada") == "26198ef6-9f52-5278-910c-daf041bb6b34"
    assert idempotency_key("welcome", "e-1", "u-ada") == "e-1/welcome/u-ada"


@pytest.mark.parametrize(
    "other", [("welcome2", "e-1", "u-ada"), ("welcome", "e-2", "u-ada"), ("welcome", "e-1", "u-b")]
)
def test_each_workflow_event_and_recipient_has_its_own_id(other: tuple[str, str, str]) -> None:
    assert notification_id(*other) != notification_id("welcome", "e-1", "u-ada")
    assert uuid.UUID(notification_id(*other)).version == 5


def test_an_id_too_long_for_an_idempotency_key_skips_with_a_reason(lookups: FakeLookups) -> None:
    long_id = "u" * 200
    lookups.users = {long_id: user_row(long_id, "Long Name")}

    [skipped] = plan(SHIPPED, event("user.registered", long_id, {}), lookups, SETTINGS).skipped

    assert "idempotency_key must have 1 to 200 characters" in skipped.reason


# --- the language --------------------------------------------------------------------------


def test_joins_literals_conditions_and_channels(lookups: FakeLookups) -> None:
    config = one_workflow(when="user(event.aggregate_id).locale == 'en'") + (
        "channels = ['email', 'email', 'sms']\n"
        "[workflow.data]\n"
        "line = \"'v' ~ event.aggregate_version ~ ' at ' ~ event.occurred_at\"\n"
        "locale = 'user(event.aggregate_id).locale'\n"
    )
    [workflow] = parse_workflows(config)

    ada = plan([workflow], event("user.registered", "u-ada", {}), lookups, SETTINGS)
    grace = plan([workflow], event("user.registered", "u-grace", {}), lookups, SETTINGS)

    [request] = ada.requests
    assert json.loads(request.data) == {"line": "v2 at 2025-01-02T03:04:05.678Z", "locale": "en"}
    assert request.channels == ("email", "sms")
    assert grace == Plan((), ())


def test_joining_an_unset_value_skips_with_a_reason(lookups: FakeLookups) -> None:
    [workflow] = parse_workflows(
        one_workflow() + "[workflow.data]\nx = \"'hi ' ~ user(event.aggregate_id).locale\"\n"
    )

    [skipped] = plan([workflow], event("user.registered", "u-grace", {}), lookups, SETTINGS).skipped

    assert skipped.reason == "user(event.aggregate_id).locale is unset"


def test_a_null_value_is_null_in_the_data(lookups: FakeLookups) -> None:
    [request] = plan(
        SHIPPED[:1], event("user.registered", "u-grace", {}), lookups, SETTINGS
    ).requests

    assert json.loads(request.data)["user"]["locale"] is None

"""The decider registry and the event/command data helpers, for every aggregate."""

from __future__ import annotations

import json

import pytest

from aggregates.codec import DataError
from aggregates.errors import DomainError
from aggregates.registry import (
    COMMANDS,
    DECIDERS,
    USER,
    WORKSPACE,
    Command,
    Event,
    command_from_data,
    command_to_data,
    event_from_data,
    event_to_data,
)
from aggregates.user.commands import (
    DeactivateUser,
    RegisterUser,
    SetNotificationPreferences,
    UpdateUserProfile,
)
from aggregates.user.events import (
    ChannelAddress,
    QuietHours,
    UserDeactivated,
    UserPreferencesSet,
    UserProfileUpdated,
    UserRegistered,
)
from aggregates.workspace.commands import (
    AddWorkspaceMember,
    ArchiveWorkspace,
    CreateWorkspace,
    RemoveWorkspaceMember,
    RenameWorkspace,
)
from aggregates.workspace.events import (
    WorkspaceArchived,
    WorkspaceCreated,
    WorkspaceMemberAdded,
    WorkspaceMemberRemoved,
    WorkspaceRenamed,
)

EMAIL = ChannelAddress(channel="email", address="ada@example.com")
SMS = ChannelAddress(channel="sms", address="+447911123456", enabled=False)
QUIET = QuietHours(start="22:00", end="07:30", timezone="Europe/London")

EVENTS: list[Event] = [
    UserRegistered(email="ada@example.com", name="Ada", locale="en-GB"),
    UserRegistered(email="bob@example.com", name="Bob"),
    UserProfileUpdated(name="Ada L.", email=None),
    UserProfileUpdated(name=None, email="ada@lovelace.org"),
    UserPreferencesSet(channels=(EMAIL, SMS), quiet_hours=QUIET),
    UserPreferencesSet(channels=()),
    UserDeactivated(reason="left"),
    UserDeactivated(),
    WorkspaceCreated(name="Acme", owner_id="u-owner"),
    WorkspaceRenamed(name="Acme Ltd"),
    WorkspaceMemberAdded(user_id="u-bob", role="admin"),
    WorkspaceMemberRemoved(user_id="u-bob"),
    WorkspaceArchived(reason="closed"),
    WorkspaceArchived(),
]
COMMANDS_SAMPLES: list[Command] = [
    RegisterUser(email="ada@example.com", name="Ada", locale="en-GB"),
    RegisterUser(email="ada@example.com", name="Ada"),
    UpdateUserProfile(name="Ada L."),
    UpdateUserProfile(email="ada@lovelace.org"),
    SetNotificationPreferences(channels=(EMAIL, SMS), quiet_hours=QUIET),
    SetNotificationPreferences(channels=()),
    DeactivateUser(reason="left"),
    DeactivateUser(),
    CreateWorkspace(name="Acme", owner_id="u-owner"),
    RenameWorkspace(name="Acme Ltd"),
    AddWorkspaceMember(user_id="u-bob", role="admin"),
    AddWorkspaceMember(user_id="u-bob"),
    RemoveWorkspaceMember(user_id="u-bob"),
    ArchiveWorkspace(reason="closed"),
    ArchiveWorkspace(),
]


def test_deciders_by_aggregate_type() -> None:
    assert DECIDERS == {"user": USER, "workspace": WORKSPACE}
    for decider in DECIDERS.values():
        assert all(t.startswith(f"{decider.aggregate_type}.") for t in decider.event_types)
        assert all(COMMANDS[name] is decider for name in decider.command_types)


def test_names_are_unique_across_aggregates() -> None:
    event_types = [t for d in DECIDERS.values() for t in d.event_types]
    assert len(event_types) == len(set(event_types))
    assert len(COMMANDS) == sum(len(d.command_types) for d in DECIDERS.values())


def test_samples_cover_every_type() -> None:
    assert {e.TYPE for e in EVENTS} == {t for d in DECIDERS.values() for t in d.event_types}
    assert {c.NAME for c in COMMANDS_SAMPLES} == set(COMMANDS)


@pytest.mark.parametrize("event", EVENTS)
def test_event_data_roundtrip(event: Event) -> None:
    data = event_to_data(event)
    # JSON keeps lists and dicts but not tuples or dataclasses, so this proves the data is plain.
    assert json.loads(json.dumps(data)) == data
    assert event_from_data(event.TYPE, data) == event


@pytest.mark.parametrize("command", COMMANDS_SAMPLES)
def test_command_data_roundtrip(command: Command) -> None:
    data = command_to_data(command)
    assert json.loads(json.dumps(data)) == data
    assert command_from_data(command.NAME, data) == command


def test_nested_preferences_data_shape() -> None:
    data = event_to_data(UserPreferencesSet(channels=(EMAIL, SMS), quiet_hours=QUIET))
    assert data == {
        "channels": [
            {"channel": "email", "address": "ada@example.com", "enabled": True},
            {"channel": "sms", "address": "+447911123456", "enabled": False},
        ],
        "quiet_hours": {"start": "22:00", "end": "07:30", "timezone": "Europe/London"},
    }


def test_optional_fields_are_always_present_in_data() -> None:
    assert event_to_data(UserRegistered(email="a@b.io", name="A")) == {
        "email": "a@b.io",
        "name": "A",
        "locale": None,
    }
    assert event_to_data(WorkspaceArchived()) == {"reason": None}
    assert command_to_data(UpdateUserProfile(name="A")) == {"name": "A", "email": None}


def test_command_defaults_apply_when_fields_are_absent() -> None:
    data = {"channels": [{"channel": "push", "address": "tok"}]}
    assert command_from_data("SetNotificationPreferences", data) == SetNotificationPreferences(
        channels=(ChannelAddress(channel="push", address="tok", enabled=True),)
    )
    assert command_from_data("AddWorkspaceMember", {"user_id": "u"}) == AddWorkspaceMember("u")


BAD_COMMAND_DATA = [
    ("RegisterUser", {"name": "Ada"}),
    ("RegisterUser", {"email": "a@b.io", "name": "Ada", "age": 3}),
    ("RegisterUser", {"email": 7, "name": "Ada"}),
    ("RegisterUser", {"email": "a@b.io", "name": None}),
    ("CreateWorkspace", {"name": "Acme", "owner_id": True}),
    ("SetNotificationPreferences", {"channels": {"channel": "push", "address": "t"}}),
    ("SetNotificationPreferences", {"channels": [{"channel": "push"}]}),
    (
        "SetNotificationPreferences",
        {"channels": [{"channel": "push", "address": "t", "enabled": 1}]},
    ),
    ("SetNotificationPreferences", {"channels": [], "quiet_hours": "22:00-07:00"}),
    ("SetNotificationPreferences", {"channels": [], "quiet_hours": {"start": "22:00"}}),
]


@pytest.mark.parametrize("name, data", BAD_COMMAND_DATA)
def test_malformed_command_data_is_invalid(name: str, data: dict[str, object]) -> None:
    with pytest.raises(DomainError) as info:
        command_from_data(name, data)
    assert (info.value.code, info.value.kind) == ("command.invalid_payload", "invalid")


def test_unknown_command_is_invalid() -> None:
    with pytest.raises(DomainError) as info:
        command_from_data("ExplodeUser", {})
    assert (info.value.code, info.value.kind) == ("command.unknown", "invalid")


@pytest.mark.parametrize(
    "event_type, data",
    [
        ("user.registered", {"email": "a@b.io"}),
        ("user.profile_updated", {"name": "A"}),
        ("workspace.member_added", {"user_id": "u", "role": 1}),
        ("workspace.exploded", {}),
    ],
)
def test_corrupt_event_data_raises_data_error(event_type: str, data: dict[str, object]) -> None:
    with pytest.raises(DataError):
        event_from_data(event_type, data)

"""The snapshot state codec: every aggregate state type round-trips, and bad text is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aggregates import codec
from aggregates.codec import DataError
from aggregates.registry import DECIDERS
from aggregates.state_codec import state_from_json, state_to_json, state_type
from aggregates.user.events import ChannelAddress, QuietHours
from aggregates.user.state import Preferences, UserState
from aggregates.workspace.state import Member, WorkspaceState

# Every aggregate type with states that set each field away from its default at least once.
SAMPLES: dict[str, list[Any]] = {
    "user": [
        UserState(),
        UserState(registered=True, email="ada@example.com", name="Ada", locale="en-GB"),
        UserState(
            registered=True, deactivated=True, email="b@example.com", name="Bé ☃", locale=None,
            preferences=Preferences(
                channels=(
                    ChannelAddress("email", "b@example.com"),
                    ChannelAddress("sms", "+441234567890", enabled=False),
                ),
                quiet_hours=QuietHours("22:00", "07:00", "Europe/London"),
            ),
        ),
    ],
    "workspace": [
        WorkspaceState(),
        WorkspaceState(
            created=True, archived=True, name="Acme", owner_id="u-1",
            members=(Member("u-1", "owner"), Member("u-2", "admin"), Member("u-3", "member")),
        ),
    ],
}  # fmt: skip


def test_the_samples_cover_every_aggregate_type() -> None:
    assert set(SAMPLES) == set(DECIDERS)
    for aggregate_type, states in SAMPLES.items():
        assert DECIDERS[aggregate_type].initial_state in states
        assert all(type(s) is state_type(aggregate_type) for s in states)


@pytest.mark.parametrize(
    ("aggregate_type", "state"),
    [(t, s) for t, states in SAMPLES.items() for s in states],
)
def test_every_state_round_trips_exactly(aggregate_type: str, state: Any) -> None:
    text = state_to_json(aggregate_type, state)
    decoded = state_from_json(aggregate_type, text)
    assert decoded == state
    assert type(decoded) is type(state)
    assert json.loads(text) == codec.to_data(state)  # the form events' data already has


def test_decoded_tuples_are_tuples_so_states_stay_hashable() -> None:
    state = SAMPLES["workspace"][1]
    decoded = state_from_json("workspace", state_to_json("workspace", state))
    assert isinstance(decoded.members, tuple)
    assert hash(decoded) == hash(state)


def _user_data(**changes: Any) -> str:
    data = codec.to_data(SAMPLES["user"][2])
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "UserState: expected an object, got list"),
        (_user_data(registered=1), "UserState.registered: expected bool, got int"),
        (_user_data(name=True), "UserState.name: expected str, got bool"),
        (_user_data(extra="x"), "UserState: unknown fields ['extra'], missing fields []"),
        (
            json.dumps({k: v for k, v in codec.to_data(UserState()).items() if k != "email"}),
            "UserState: unknown fields [], missing fields ['email']",
        ),
        (
            _user_data(preferences={"channels": [{"channel": "sms"}], "quiet_hours": None}),
            "UserState.preferences.channels[]: unknown fields [], missing fields "
            "['address', 'enabled']",
        ),
        (
            _user_data(preferences={"channels": {}, "quiet_hours": None}),
            "UserState.preferences.channels: expected a list, got dict",
        ),
    ],
)
def test_text_that_is_no_state_is_refused(text: str, message: str) -> None:
    with pytest.raises(DataError) as raised:
        state_from_json("user", text)
    assert str(raised.value) == message


def test_text_that_is_no_json_is_refused() -> None:
    with pytest.raises(DataError) as raised:
        state_from_json("user", "not json")
    assert str(raised.value) == "user state: not JSON (Expecting value: line 1 column 1 (char 0))"


def test_an_aggregate_type_nobody_decides_is_refused() -> None:
    with pytest.raises(DataError, match="no decider for aggregate type 'invoice'"):
        state_from_json("invoice", "{}")

"""Digests: low-priority notifications collapse into one message per user and window."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from aggregates.user.events import ChannelAddress, QuietHours
from sagas.notification.commands import (
    CollectDigestItem,
    FireTimer,
    ForwardToDigest,
    NotificationCommand,
    RenderNotification,
    StartNotification,
    Timer,
)
from sagas.notification.decider import decide, evolve, initial_state
from sagas.notification.digest import digest_end, digest_id, window_end
from sagas.notification.events import (
    DigestItem,
    NotificationDigestClosed,
    NotificationDigested,
    NotificationDigestItemAdded,
    NotificationDigestItemForwarded,
    NotificationEvent,
    NotificationGivenUp,
    NotificationRequested,
)
from sagas.notification.react import react
from sagas.notification.resume import resume
from sagas.notification.state import NotificationState

WINDOW = 900_000
T0 = int(datetime(2026, 1, 5, 12, 3, tzinfo=UTC).timestamp() * 1000)
END = int(datetime(2026, 1, 5, 12, 15, tzinfo=UTC).timestamp() * 1000)
PREFS = (ChannelAddress("email", "ada@example.com"),)
MEMBER = StartNotification(
    notification_id="n-1",
    user_id="u-1",
    template="activity",
    data='{"actor": {"name": "Grace"}}',
    requested_at=T0,
    deadline=T0 + 3_600_000,
    preferences=PREFS,
    digest_window_ms=WINDOW,
    digest_summary="Grace commented on Q3 plan",
)
DIGEST = digest_id("u-1", END)
ITEM = DigestItem("n-1", "activity", "Grace commented on Q3 plan")


def collect(item: DigestItem, at: int = T0 + 5) -> CollectDigestItem:
    return CollectDigestItem(
        digest_id=DIGEST,
        user_id="u-1",
        template="digest",
        item=item,
        window_end=END,
        window_ms=WINDOW,
        received_at=at,
        deadline=END + 3_600_000,
        preferences=PREFS,
    )


def run(
    commands: Sequence[NotificationCommand], state: NotificationState = initial_state
) -> tuple[NotificationState, list[NotificationEvent], list[object]]:
    events: list[NotificationEvent] = []
    outputs: list[object] = []
    for command in commands:
        for event in decide(state, command):
            state = evolve(state, event)
            events.append(event)
            outputs += react(state, event)
    return state, events, outputs


def test_a_digest_template_ends_its_saga_by_handing_an_item_to_the_users_digest() -> None:
    state, events, outputs = run([MEMBER])

    assert [type(e) for e in events] == [NotificationRequested, NotificationDigested]
    assert events[1] == NotificationDigested(DIGEST, END, "Grace commented on Q3 plan")
    assert (state.status, state.terminal) == ("digested", True)
    assert outputs == [ForwardToDigest(DIGEST, "u-1", END, ITEM)]
    assert window_end(END, WINDOW) == END + WINDOW  # a window's end starts the next one


def test_critical_or_plain_templates_are_not_digested() -> None:
    for start in (replace(MEMBER, critical=True), replace(MEMBER, digest_window_ms=None)):
        _, events, outputs = run([start])
        assert NotificationDigested not in {type(e) for e in events}
        assert any(isinstance(o, RenderNotification) for o in outputs)


def test_a_digest_collects_until_its_window_ends_then_renders_every_item() -> None:
    second = DigestItem("n-2", "activity", "Alan edited Roadmap")
    state, events, outputs = run([collect(ITEM), collect(second), collect(ITEM)])

    assert [type(e) for e in events] == [
        NotificationRequested,
        NotificationDigestItemAdded,
        NotificationDigestItemAdded,  # the redelivered first item adds nothing
    ]
    assert (state.status, state.template, state.digest_items) == (
        "collecting",
        "digest",
        (ITEM, second),
    )
    assert outputs == [
        Timer(saga_id=DIGEST, due_at=END, kind="digest_window"),
        Timer(saga_id=DIGEST, due_at=END + 3_600_000, kind="deadline"),
    ]
    assert [t.kind for t in resume(state) if isinstance(t, Timer)] == ["deadline", "digest_window"]

    fire = FireTimer(timer=Timer(saga_id=DIGEST, due_at=END, kind="digest_window"), fired_at=END)
    closed, events, outputs = run([fire, fire], state)

    assert events == [NotificationDigestClosed(items=2)]
    assert closed.status == "pending"
    [render] = [o for o in outputs if isinstance(o, RenderNotification)]
    assert (render.template, render.channels) == ("digest", ("email",))
    assert json.loads(render.data) == {
        "count": 2,
        "items": [
            {"notification_id": "n-1", "template": "activity", "summary": ITEM.summary},
            {"notification_id": "n-2", "template": "activity", "summary": second.summary},
        ],
    }


def test_an_item_reaching_a_closed_digest_goes_to_the_digest_open_now() -> None:
    state, _, _ = run([collect(ITEM)])
    state, _, _ = run([FireTimer(Timer(DIGEST, END, "digest_window"), END)], state)
    late = DigestItem("n-3", "activity", "Late")

    _, events, outputs = run([collect(late, at=END + 20)], state)

    later = window_end(END + 20, WINDOW)
    assert events == [NotificationDigestItemForwarded(late, digest_id("u-1", later), later)]
    assert outputs == [ForwardToDigest(digest_id("u-1", later), "u-1", later, late)]


def test_a_digest_for_a_user_without_channels_gives_up_when_it_closes() -> None:
    state, _, _ = run([replace(collect(ITEM), preferences=())])

    _, events, _ = run([FireTimer(Timer(DIGEST, END, "digest_window"), END)], state)

    assert events == [NotificationDigestClosed(items=1), NotificationGivenUp("no_channels")]


def test_one_digest_per_user_and_window() -> None:
    assert digest_id("u-1", END) == DIGEST != digest_id("u-2", END)
    assert digest_id("u-1", END + WINDOW) != DIGEST
    assert window_end(T0, WINDOW) == window_end(END - 1, WINDOW) == END


def test_a_quiet_period_collects_into_one_digest_that_closes_when_it_ends() -> None:
    quiet = QuietHours(start="22:00", end="07:00", timezone="Europe/Paris")  # UTC+1 in January
    morning = int(datetime(2026, 1, 6, 6, 0, tzinfo=UTC).timestamp() * 1000)  # 07:00 in Paris
    evening = int(datetime(2026, 1, 5, 20, 50, tzinfo=UTC).timestamp() * 1000)  # 21:50
    night = int(datetime(2026, 1, 6, 2, 10, tzinfo=UTC).timestamp() * 1000)  # 03:10
    afternoon = int(datetime(2026, 1, 6, 13, 3, tzinfo=UTC).timestamp() * 1000)  # 14:03

    def end_of(at: int) -> int:
        return digest_end(at, WINDOW, quiet)

    # 21:50's window ends at 22:00, inside the quiet hours: it waits for them to end too.
    assert end_of(evening) == end_of(night) == morning
    assert end_of(afternoon) == window_end(afternoon, WINDOW)
    member = replace(MEMBER, requested_at=night, deadline=night + 3_600_000, quiet_hours=quiet)
    _, events, _ = run([member])
    assert events[1] == NotificationDigested(
        digest_id("u-1", morning), morning, "Grace commented on Q3 plan"
    )

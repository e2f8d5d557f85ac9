"""Which event types a service may publish: derived from the deciders' registries, not listed."""

from __future__ import annotations

from aggregates.registry import DECIDERS
from sagas.event_owners import ANOMALY_WATCH, COMMAND_PROCESSOR, NOTIFIER, owner_of
from schemas.registry import default_registry


def test_every_type_a_decider_emits_is_the_command_processors() -> None:
    emitted = {t for decider in DECIDERS.values() for t in decider.event_types}
    assert emitted and {owner_of(t) for t in emitted} == {COMMAND_PROCESSOR}


def test_any_type_of_a_decided_aggregate_is_owned_even_one_not_yet_written() -> None:
    assert owner_of("user.renamed_itself") == COMMAND_PROCESSOR
    assert owner_of("workspace.anything") == COMMAND_PROCESSOR


def test_saga_events_and_requests_are_the_notifiers() -> None:
    owned = ("notification.delivered", "notification.submitted", "channel.circuit_opened")
    assert {owner_of(event_type) for event_type in owned} == {NOTIFIER}


def test_the_rest_of_the_event_schemas_are_publishable() -> None:
    free = {t for t in default_registry().names("events") if owner_of(t) is None}
    assert free == {"activity.recorded"}


def test_anomalies_are_the_anomaly_watchs_so_no_service_can_raise_or_fake_an_alert() -> None:
    assert owner_of("analytics.anomaly_detected") == ANOMALY_WATCH

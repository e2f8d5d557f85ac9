"""streams.ids.new_id and new_ids: random version 4 UUIDs as text, unique."""

from __future__ import annotations

import uuid

from streams.ids import new_id, new_ids


def test_ids_are_version_4_uuids_as_text() -> None:
    for _ in range(2_000):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    ids = [new_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)


def test_ids_in_bulk_are_the_same_kind_of_ids() -> None:
    ids = new_ids(50_000)
    assert len(ids) == len(set(ids)) == 50_000
    for text in ids[:2_000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert new_ids(0) == []

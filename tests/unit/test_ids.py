"""streams.ids.new_id: random version 4 UUIDs as text, unique."""

from __future__ import annotations

import uuid

from streams.ids import new_id


def test_ids_are_version_4_uuids_as_text() -> None:
    for _ in range(2_000):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    ids = [new_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)

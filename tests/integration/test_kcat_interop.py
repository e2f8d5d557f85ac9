"""Any client can read our topics: kcat fetches bytes, plain fastavro and schemas/ decode."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from io import BytesIO
from pathlib import Path

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

from infra.config.settings import Settings
from streams.bus import EventBus
from streams.kafka.topics import ensure_topics

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def schemas_by_fingerprint() -> dict[bytes, dict[str, object]]:
    """Built from nothing but the .avsc files, as a foreign consumer would."""
    found = {}
    for path in SCHEMAS.glob("*/*/v*.avsc"):
        raw = json.loads(path.read_text())
        found[bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))] = raw
    return found


def test_kcat_reads_events_that_plain_avro_decodes(settings: Settings) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is installed by `make test` (nexus install --test-tools)"
    ensure_topics(settings)

    async def publish() -> None:
        bus = EventBus(settings)
        try:
            for i in range(3):
                data = {"kind": "k", "subject_id": f"s{i}", "attributes": {}}
                await bus.publish("activity.recorded", f"a{i}", data)
        finally:
            bus.close()

    asyncio.run(publish())
    out = subprocess.run(
        [
            kcat,
            "-b",
            settings.resolved_kafka_bootstrap,
            "-C",
            "-t",
            settings.topic("events"),
            "-e",
            "-q",
            "-X",
            "isolation.level=read_committed",
            "-f",
            "%S\\n%s",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    known = schemas_by_fingerprint()
    subjects = []
    rest = out
    while rest:
        size_text, _, rest = rest.partition(b"\n")
        payload, rest = rest[: int(size_text)], rest[int(size_text) :]
        assert payload[:2] == b"\xc3\x01"
        schema = parse_schema(known[payload[2:10]])
        record = schemaless_reader(BytesIO(payload[10:]), schema, None)
        subjects.append(record["data"]["subject_id"])  # type: ignore[call-overload,index]
    assert sorted(subjects) == ["s0", "s1", "s2"]

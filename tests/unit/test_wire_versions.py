"""The wire tests' records (tests/wire_versions.py): each old encoding decodes to the latest
version, with exactly the record `as_latest` says, for every multi-version schema."""

from __future__ import annotations

import pytest
from wire_versions import as_latest, encode_as, multi_version_names, older_versions, sample

from schemas.codec import AvroCodec
from schemas.registry import default_registry


@pytest.mark.parametrize("name", multi_version_names())
def test_an_old_encoding_decodes_to_what_as_latest_says(name: str) -> None:
    codec, latest = AvroCodec(), default_registry().latest(name)
    for old in older_versions(name):
        record = sample(old, f"{name}-1")
        payload = encode_as(old, record)

        schema, decoded = codec.decode(payload)

        assert payload[2:10] == old.fingerprint != latest.fingerprint
        assert schema == latest
        assert decoded == as_latest(name, record)
        assert set(decoded) > set(record) or decoded["data"].keys() > record["data"].keys()

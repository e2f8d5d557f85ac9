"""Loads every `.avsc` under schemas/ and indexes it by name, version and fingerprint.

Layout: `schemas/<kind>/<name>/v<N>.avsc`, kind being events, commands, system or tracking
(the analytics tracking plan).
Every version is kept so that a reader can resolve any message ever written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_ROOT = Path(__file__).resolve().parent
KINDS = ("events", "commands", "system", "tracking")


@dataclass(frozen=True)
class SchemaVersion:
    kind: str
    name: str
    version: int
    path: Path
    raw: dict[str, Any]
    parsed: Any
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO, as in single-object encoding

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def _load(kind: str, path: Path) -> SchemaVersion:
    raw = json.loads(path.read_text())
    canonical = to_parsing_canonical_form(raw)
    return SchemaVersion(
        kind=kind,
        name=path.parent.name,
        version=int(path.stem.removeprefix("v")),
        path=path,
        raw=raw,
        parsed=parse_schema(raw, _write_hint=False),
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


class SchemaRegistry:
    """Every schema version under a root, immutable once loaded."""

    def __init__(self, root: Path = SCHEMA_ROOT) -> None:
        self.root = root
        self._by_name: dict[str, list[SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for kind in KINDS:
            for path in sorted((root / kind).glob("*/v*.avsc")):
                schema = _load(kind, path)
                self._by_name.setdefault(schema.name, []).append(schema)
                self._by_fingerprint[schema.fingerprint] = schema
        for versions in self._by_name.values():
            versions.sort(key=lambda s: s.version)

    def names(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, v in self._by_name.items() if kind is None or v[0].kind == kind)

    def versions(self, name: str) -> list[SchemaVersion]:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownSchema(name) from None

    def latest(self, name: str) -> SchemaVersion:
        return self.versions(name)[-1]

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fp)


class UnknownSchema(KeyError):
    """No schema of that name exists under schemas/."""


@cache
def default_registry() -> SchemaRegistry:
    """The registry of the installed schemas/ folder, loaded once per process."""
    return SchemaRegistry()

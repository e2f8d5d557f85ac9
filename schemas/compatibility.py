"""Full (backward and forward) compatibility between every pair of a schema's versions.

Backward: the newer version reads data written with the older one.
Forward: the older version reads data written with the newer one.
Checked transitively, since a consumer may meet any version ever written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import combinations

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas.registry import SchemaRegistry, SchemaVersion


@dataclass(frozen=True)
class Incompatibility:
    name: str
    reader: int
    writer: int
    problems: str

    def __str__(self) -> str:
        return f"{self.name}: v{self.reader} cannot read v{self.writer}: {self.problems}"


def _problems(reader: SchemaVersion, writer: SchemaVersion) -> str | None:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(
        reader=avro.schema.parse(json.dumps(reader.raw)),
        writer=avro.schema.parse(json.dumps(writer.raw)),
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    kinds = ", ".join(sorted(i.value for i in result.incompatibilities))
    where = ", ".join(sorted(result.locations))
    return f"{kinds} at {where} ({', '.join(sorted(result.messages))})"


def check_versions(versions: list[SchemaVersion]) -> list[Incompatibility]:
    found = []
    for older, newer in combinations(versions, 2):
        for reader, writer in ((newer, older), (older, newer)):
            problems = _problems(reader, writer)
            if problems:
                found.append(Incompatibility(reader.name, reader.version, writer.version, problems))
    return found


def check_registry(registry: SchemaRegistry) -> list[Incompatibility]:
    """Every incompatibility in the registry; empty means every history is fully compatible."""
    found: list[Incompatibility] = []
    for name in registry.names():
        versions = registry.versions(name)
        if [v.version for v in versions] != list(range(1, len(versions) + 1)):
            found.append(Incompatibility(name, 0, 0, "versions must be v1..vN with no gap"))
        found.extend(check_versions(versions))
    return found

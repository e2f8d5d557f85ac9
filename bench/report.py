"""Figures, the printed table and the JSON file: what every benchmark hands back."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = ("benchmark", "nexus", "reference", "ratio", "target", "verdict")


@dataclass(frozen=True)
class Figure:
    """One measured figure beside its reference; `passed` is None when there is no target."""

    benchmark: str
    unit: str
    nexus: float
    reference: float | None
    reference_name: str
    target: str = "-"
    passed: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0:
            return None
        return self.nexus / self.reference

    @property
    def verdict(self) -> str:
        return {None: "info", True: "pass", False: "MISS"}[self.passed]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "verdict": self.verdict}


@dataclass
class Outcome:
    """A benchmark's figures, notes for the reader and raw details for the JSON file."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


def say(message: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def quantity(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f} {unit}"


def table(outcomes: Sequence[Outcome]) -> str:
    """A fixed-width table, one row per figure, failed benchmarks named with their error."""
    rows: list[tuple[str, ...]] = [COLUMNS]
    for outcome in outcomes:
        if outcome.error is not None:
            rows.append((outcome.name, "-", "-", "-", "-", "ERROR"))
        for f in outcome.figures:
            ratio = "-" if f.ratio is None else f"{f.ratio:.2f}"
            reference = f"{quantity(f.reference, f.unit)} ({f.reference_name})"
            rows.append(
                (f.benchmark, quantity(f.nexus, f.unit), reference, ratio, f.target, f.verdict)
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def notes(outcomes: Sequence[Outcome]) -> str:
    lines: list[str] = []
    for outcome in outcomes:
        lines.append(f"[{outcome.name}] {outcome.seconds:.0f} s")
        if outcome.error is not None:
            lines.append(f"  error: {outcome.error}")
        lines.extend(f"  {note}" for note in outcome.notes)
    return "\n".join(lines)


def write_json(path: Path, outcomes: Sequence[Outcome], run: dict[str, Any]) -> None:
    body = {
        "run": run,
        "benchmarks": [
            {
                "name": o.name,
                "seconds": round(o.seconds, 1),
                "error": o.error,
                "figures": [f.as_json() for f in o.figures],
                "notes": o.notes,
                "details": o.details,
            }
            for o in outcomes
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(body), indent=2, default=str) + "\n")


def finite(value: Any) -> Any:
    """`value` with NaN and infinities as null, which JSON can carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value

"""The tracking plan's policies (`infra/config/analytics.toml`), loaded into typed values."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

GENERIC_TYPE = "analytics.generic"
UnknownTypes = Literal["accept", "reject"]


@dataclass(frozen=True)
class TypeRollup:
    """What the rollups keep for one event type besides counts and unique users."""

    top: str | None = None
    percentiles: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackingPlan:
    unknown_types: UnknownTypes = "accept"
    grace_seconds: int = 300
    future_tolerance_seconds: int = 300
    retention_days: int = 30
    rollups: dict[str, TypeRollup] = field(default_factory=dict)

    def rollup(self, event_type: str) -> TypeRollup:
        return self.rollups.get(event_type, TypeRollup())


class PlanError(ValueError):
    """The plan file is malformed; the message names the key."""


def load_plan(path: Path) -> TrackingPlan:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"{path}: {exc}") from exc
    return parse_plan(raw)


def parse_plan(raw: dict[str, Any]) -> TrackingPlan:
    unknown = raw.get("unknown_types", "accept")
    if unknown not in ("accept", "reject"):
        raise PlanError("unknown_types must be accept or reject")
    numbers = {}
    for key in ("grace_seconds", "future_tolerance_seconds", "retention_days"):
        value = raw.get(key, getattr(TrackingPlan, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PlanError(f"{key} must be a non-negative integer")
        numbers[key] = value
    rollups = {name: _rollup(name, spec) for name, spec in raw.get("rollups", {}).items()}
    return TrackingPlan(unknown_types=cast(UnknownTypes, unknown), rollups=rollups, **numbers)


def _rollup(name: str, spec: Any) -> TypeRollup:
    if not isinstance(spec, dict):
        raise PlanError(f"rollups.{name} must be a table")
    top = spec.get("top")
    percentiles = spec.get("percentiles", [])
    if top is not None and not isinstance(top, str):
        raise PlanError(f"rollups.{name}.top must be a property name")
    if not isinstance(percentiles, list) or not all(isinstance(p, str) for p in percentiles):
        raise PlanError(f"rollups.{name}.percentiles must be a list of property names")
    return TypeRollup(top=top, percentiles=tuple(percentiles))

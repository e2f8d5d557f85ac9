"""Bounded-size summaries kept in rollup rows: HyperLogLog for unique users, a log-bucket
histogram for percentiles, and capped top-value counts. All merge by plain functions, so
a query can combine partitions and windows; all are JSON-ready dicts with string keys.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from functools import lru_cache

HLL_P = 12  # 4,096 registers: about 1.6% standard error
HLL_M = 1 << HLL_P
_ALPHA = 0.7213 / (1 + 1.079 / HLL_M)
HIST_BASE = 1.04  # bucket width: values within 2% of a bucket's middle
TOP_CAP = 100  # distinct values kept per row; the rest are summed under OTHER
OTHER = "(other)"

Registers = dict[str, int]
Histogram = dict[str, int]


def hll_add(registers: Registers, item: str) -> None:
    hll_set(registers, hll_slot(item))


@lru_cache(maxsize=65_536)  # the same users come back event after event, row after row
def hll_slot(item: str) -> tuple[str, int]:
    """(the register `item` falls in, its rank there)."""
    value = int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "big")
    index = value >> (64 - HLL_P)
    rest = value & ((1 << (64 - HLL_P)) - 1)
    return str(index), (64 - HLL_P) - rest.bit_length() + 1


def hll_set(registers: Registers, slot: tuple[str, int]) -> None:
    key, rank = slot
    if registers.get(key, 0) < rank:
        registers[key] = rank


def hll_merge(sketches: Iterable[Mapping[str, int]]) -> Registers:
    merged: Registers = {}
    for registers in sketches:
        for key, rank in registers.items():
            if merged.get(key, 0) < rank:
                merged[key] = rank
    return merged


def hll_count(registers: Mapping[str, int]) -> int:
    """Estimated distinct items (linear counting while registers are mostly empty)."""
    zeros = HLL_M - len(registers)
    harmonic = zeros + sum(2.0**-rank for rank in registers.values())
    estimate = _ALPHA * HLL_M * HLL_M / harmonic
    if estimate <= 2.5 * HLL_M and zeros:
        estimate = HLL_M * math.log(HLL_M / zeros)
    return round(estimate)


def hist_add(histogram: Histogram, value: float) -> None:
    key = hist_bucket(value)
    histogram[key] = histogram.get(key, 0) + 1


def hist_bucket(value: float) -> str:
    return "-1" if value < 1 else str(math.floor(math.log(value, HIST_BASE)))


def hist_merge(histograms: Iterable[Mapping[str, int]]) -> Histogram:
    merged: Histogram = {}
    for histogram in histograms:
        for key, count in histogram.items():
            merged[key] = merged.get(key, 0) + count
    return merged


def quantile(histogram: Mapping[str, int], q: float) -> float | None:
    """The q-quantile (0..1) to within the bucket width; None for an empty histogram."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank, seen = q * total, 0
    for key in sorted(histogram, key=int):
        seen += histogram[key]
        if seen >= rank:
            index = int(key)
            return 0.0 if index < 0 else HIST_BASE ** (index + 0.5)
    return None


def top_add(top: dict[str, int], value: str) -> None:
    if value in top or len(top) < TOP_CAP:
        top[value] = top.get(value, 0) + 1
    else:
        top[OTHER] = top.get(OTHER, 0) + 1


def top_merge(tops: Iterable[Mapping[str, int]], limit: int) -> list[tuple[str, int]]:
    merged: dict[str, int] = {}
    for top in tops:
        for value, count in top.items():
            merged[value] = merged.get(value, 0) + count
    ranked = sorted(((v, c) for v, c in merged.items() if v != OTHER), key=lambda x: (-x[1], x[0]))
    return ranked[:limit]

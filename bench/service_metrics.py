"""Histograms scraped from a service's /metrics, to say where a latency figure's time went."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class HistogramTotals:
    """A histogram's observation count and sum of seconds, all label sets added up."""

    count: float = 0.0
    seconds: float = 0.0

    def __sub__(self, earlier: HistogramTotals) -> HistogramTotals:
        return HistogramTotals(self.count - earlier.count, self.seconds - earlier.seconds)

    @property
    def mean_ms(self) -> float:
        return self.seconds / self.count * 1000 if self.count else 0.0


def histogram(base_url: str, name: str) -> HistogramTotals:
    """The totals of histogram `name` at `base_url`/metrics (zero when it has no samples)."""
    text = httpx.get(f"{base_url}/metrics", timeout=5.0).text
    count = seconds = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_count":
                count += sample.value
            elif sample.name == f"{name}_sum":
                seconds += sample.value
    return HistogramTotals(count, seconds)

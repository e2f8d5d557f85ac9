"""The PromQL helper the dashboard test relies on finds exactly the metrics an expression reads."""

from __future__ import annotations

import pytest
from promql_names import exported_names, family, metric_names


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("up == 0", {"up"}),
        (
            'sum by (job) (rate(nexus_http_requests_total{route!~"a|b", status=~"5.."}[5m]))'
            " / on (job) group_left (x) job:nexus_http_requests:rate5m > 0.05",
            {"nexus_http_requests_total", "job:nexus_http_requests:rate5m"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[$__rate_interval])))",
            {"x_seconds_bucket"},
        ),
        ("a unless a offset 10m and on (job, instance) (up offset 10m)", {"a", "up"}),
        ("deriv(lag[10m]) > 1e3 and max_over_time(age[5m]) > bound", {"lag", "age", "bound"}),
        ('count(topk(5, y{name="sum(by)"}))', {"y"}),
    ],
)
def test_metric_names(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def test_exported_names_include_declared_families_and_histogram_parts() -> None:
    page = (
        "# HELP a_total things\n# TYPE a_total counter\n"
        "# HELP b_seconds latency\n# TYPE b_seconds histogram\n"
        'b_seconds_bucket{le="1.0"} 3.0\nc 1.0\n'
    )

    assert exported_names(page) == {"a_total", "b_seconds", "b_seconds_bucket", "c"}
    assert family("b_seconds_count") == "b_seconds"

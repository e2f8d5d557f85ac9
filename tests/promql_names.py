"""Test helper: the metric names a PromQL expression reads, and those a /metrics page exports.

PromQL is small enough to take apart for this: after removing strings, label matchers,
ranges, Grafana variables and the label lists of `by`, `without`, `on`, `ignoring` and
`group_*`, every identifier that is not a keyword, an operator or a function call is a
metric name (a recording rule's too).
"""

from __future__ import annotations

import re

KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
     "group_left", "group_right", "inf", "nan", "atan2", "start", "end"}
    | {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
       "bottomk", "topk", "quantile"}
)  # fmt: skip
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
BRACES_OR_RANGE = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")
IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?")
HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def metric_names(expression: str) -> set[str]:
    """The metrics `expression` reads."""
    text = GRAFANA_VARIABLE.sub("5m", STRING.sub('""', expression))
    text = BRACES_OR_RANGE.sub(" ", LABEL_LIST.sub(" ", text))
    names = set()
    for found in IDENTIFIER.finditer(text):
        name, call = found.group(1), found.group(2)
        if call is None and name not in KEYWORDS and not _duration_or_number(name):
            names.add(name)
    return names


def _duration_or_number(token: str) -> bool:
    return re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+|\d+(\.\d+)?(e\d+)?", token) is not None


def family(name: str) -> str:
    """A histogram series' family name (`x_bucket` -> `x`); other names unchanged."""
    for suffix in HISTOGRAM_PARTS:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def exported_names(page: str) -> set[str]:
    """Every metric name a Prometheus text page declares (# HELP / # TYPE) or has samples of,
    with histogram families by their own name too."""
    names = set()
    for line in page.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names | {family(name) for name in names}

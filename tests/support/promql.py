"""The metric names a PromQL expression reads, found without a full PromQL parser.

Good enough for the expressions of the dashboard and the alert rules: label
matchers, ranges, strings and grouping clauses are cut out first, then every
remaining identifier that is not a function call, a keyword or a Grafana
variable is a metric name. ``promtool check rules`` checks the syntax itself.
"""

from __future__ import annotations

import re

__all__ = ["GRAFANA_VARIABLES", "metric_names", "with_grafana_variables_set"]

#: Values standing in for the dashboard's variables where PromQL must parse.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".*"}

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w:])(?!\s*\()")


def with_grafana_variables_set(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    text = with_grafana_variables_set(expr)
    text = _STRINGS.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}

"""deploy/grafana/tributary.json queries only what the services export, in valid PromQL.

Every panel's expressions are parsed for the metric names they read and
compared with the names the services' /metrics bodies carry, so renaming or
dropping a metric fails here instead of leaving an empty panel. The
expressions themselves go through ``promtool check rules`` (as recording
rules, with the dashboard's variables set), which parses them as Prometheus does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.support.promql import metric_names, with_grafana_variables_set
from tests.support.promtool import run_promtool
from tests.unit.test_deploy_settings import REPO
from tests.unit.test_metrics_exposition import exported_by_services

DASHBOARD = REPO / "deploy/grafana/tributary.json"
PROVISIONING = REPO / "deploy/grafana/provisioning"


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in data["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return found


def queries(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every query panel."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(data)
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def unknown_metrics(data: dict[str, Any]) -> dict[str, set[str]]:
    unknown: dict[str, set[str]] = {}
    for title, expr in queries(data):
        names = metric_names(expr)
        assert names, f"{title}: {expr} reads no metric"
        if names - exported_by_services():
            unknown.setdefault(title, set()).update(names - exported_by_services())
    return unknown


def test_every_panel_queries_metrics_the_services_export() -> None:
    assert not unknown_metrics(dashboard())


def test_a_renamed_metric_in_a_panel_is_caught() -> None:
    data = dashboard()
    target = next(p for p in panels(data) if p["type"] != "row")["targets"][0]
    target["expr"] = target["expr"].replace("workflow_status_total", "workflow_statuses_total")
    assert unknown_metrics(data) == {
        next(p for p in panels(data) if p["type"] != "row")["title"]: {"workflow_statuses_total"}
    }


def test_the_dashboard_covers_what_operators_watch() -> None:
    read = set().union(*(metric_names(expr) for _, expr in queries(dashboard())))
    watched = {
        "workflow_status_total",  # throughput
        "events_consumed_total",
        "workflow_duration_seconds_bucket",  # latency
        "step_duration_seconds_bucket",
        "llm_request_seconds_bucket",
        "llm_retries_total",  # errors by class
        "tool_call_errors_total",
        "dead_letters_total",
        "llm_tokens_total",  # tokens and cost by model
        "llm_cost_usd_total",
        "consumer_lag_records",  # lag and in-flight per service
        "handlers_in_progress",
    }
    assert watched <= read, sorted(watched - read)


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{n}", "expr": with_grafana_variables_set(expr)}
        for n, (_, expr) in enumerate(queries(dashboard()))
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = run_promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_panels_use_the_dashboards_data_source_and_unique_ids() -> None:
    data = dashboard()
    ids = [panel["id"] for panel in panels(data)]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in data["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    for panel in panels(data):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_grafana_provisioning_loads_the_dashboard_from_prometheus() -> None:
    (source,) = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards/tributary.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"

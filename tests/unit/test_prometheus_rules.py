"""deploy/prometheus: the alert rules pass promtool's checks and unit tests, read only
metrics the services export, and the scrape configuration reaches every service where it
serves /metrics in compose.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promql import metric_names
from tests.support.promtool import run_promtool
from tests.unit.test_deploy_compose import services
from tests.unit.test_deploy_settings import REPO, WORKERS, compose_environment, served_paths
from tests.unit.test_metrics_exposition import APP_SERVICES, exported_by_services

PROMETHEUS_DIR = REPO / "deploy/prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]


def test_the_alert_rules_pass_promtool_check() -> None:
    checked = run_promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tested = run_promtool("test", "rules", ALERT_TESTS.name, cwd=PROMETHEUS_DIR)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_rule_that_does_not_fire_as_tested_fails_the_unit_tests(tmp_path: Path) -> None:
    rules = load(ALERTS)
    for rule in rules["groups"][0]["rules"]:
        if rule["alert"] == "TributaryDeadLetters":
            rule["expr"] = rule["expr"].replace("> 0", "> 5")
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / ALERT_TESTS.name).write_text(ALERT_TESTS.read_text())
    tested = run_promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0
    assert "TributaryDeadLetters" in tested.stdout + tested.stderr


def test_every_alert_is_unit_tested_and_has_a_severity_and_summary() -> None:
    tested = {
        case["alertname"]
        for test in load(ALERT_TESTS)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    for rule in alert_rules():
        assert rule["alert"] in tested, f"{rule['alert']} never fires in alerts.test.yml"
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    assert {rule["alert"] for rule in alert_rules()} >= {
        "TributaryWorkflowsStuck",
        "TributaryConsumerLagGrowing",
        "TributaryDeadLetters",
        "TributaryWorkflowFailuresSpiking",
        "TributaryErrorsSpiking",
    }


def test_the_alert_rules_read_only_metrics_the_services_export() -> None:
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = names - exported_by_services()
        assert not unknown, (rule["alert"], sorted(unknown))


def test_the_prometheus_configuration_passes_promtool_check() -> None:
    checked = run_promtool("check", "config", str(CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def metrics_port(service: str) -> str:
    env = compose_environment(services()[service])
    port = env["TRIBUTARY_GATEWAY_METRICS_PORT" if service == "gateway" else "TRIBUTARY_HTTP_PORT"]
    assert port is not None
    return port


@pytest.mark.parametrize("service", APP_SERVICES)
def test_prometheus_scrapes_each_service_where_it_serves_metrics(service: str) -> None:
    jobs = {job["job_name"]: job for job in load(CONFIG)["scrape_configs"]}
    job = jobs[service]  # the job is the service's name: dashboards group by it
    (static,) = job["static_configs"]
    assert static["targets"] == [f"{service}:{metrics_port(service)}"]
    path = job.get("metrics_path", "/metrics")
    if service in WORKERS:
        assert path in served_paths(service)
    else:
        assert path.rstrip("/") in served_metrics_mounts()


def served_metrics_mounts() -> set[str]:
    from starlette.routing import Mount, Route

    from tributary_gateway.app import metrics_app

    return {route.path for route in metrics_app().routes if isinstance(route, Mount | Route)}


def test_the_compose_prometheus_loads_this_directory() -> None:
    prometheus = services()["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert load(CONFIG)["rule_files"] == [ALERTS.name]

"""Each service's /metrics body passes ``promtool check metrics``, and docs name every metric.

The body is produced as the service's process produces it (its entry module
imported in a process of its own, every labelled metric given one series), so
a metric added anywhere in the code base is linted the moment a service
imports it: counter names end in ``_total``, units are base units, each has help.
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from tests.support.metrics_exposition import exported_names, exposition
from tests.support.promtool import run_promtool
from tests.unit.test_deploy_settings import REPO, SERVICES, WORKERS

APP_SERVICES = ("gateway", *WORKERS)
#: The entry module each service's process imports first.
ENTRY_MODULES = {
    "gateway": "tributary_gateway.__main__",
    **{name: f"{SERVICES[name].module}.__main__" for name in WORKERS},
}
#: Families prometheus_client adds on its own (process and interpreter).
RUNTIME_PREFIXES = ("python_", "process_")
NEW_METRICS = ("step_duration_seconds", "handlers_in_progress", "consumer_lag_records")


@cache
def body_of(service: str) -> str:
    return exposition(ENTRY_MODULES[service])


@cache
def exported_by_services() -> frozenset[str]:
    """Every metric and sample name the services' /metrics bodies carry."""
    return frozenset(name for service in APP_SERVICES for name in exported_names(body_of(service)))


def families(body: str) -> set[str]:
    return {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_the_metrics_of_each_service_pass_promtool(service: str) -> None:
    body = body_of(service)
    assert families(body) >= set(NEW_METRICS) | {"llm_cost_usd_total", "events_consumed_total"}
    checked = run_promtool("check", "metrics", stdin=body)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "", checked.stdout


def test_promtool_catches_a_misnamed_metric() -> None:
    bad = "# HELP steps Steps.\n# TYPE steps counter\nsteps 1\n"
    checked = run_promtool("check", "metrics", stdin=bad)
    assert checked.returncode != 0
    assert "_total" in checked.stdout + checked.stderr


def test_every_metric_of_the_services_is_documented() -> None:
    documented = set(re.findall(r"`([a-z_]+)`", (REPO / "docs/operations.md").read_text()))
    ours = {
        name
        for service in APP_SERVICES
        for name in families(body_of(service))
        if not name.startswith(RUNTIME_PREFIXES) and not name.endswith("_created")
    }
    undocumented = sorted(ours - documented)
    assert not undocumented, f"not in docs/operations.md: {undocumented}"


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_promtool_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr("tests.support.promtool.shutil.which", lambda _name: None)
    monkeypatch.setenv("CI", ci)
    # Both caught, so that a skip cannot pass for the failure CI needs, nor the reverse.
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as raised:
        run_promtool("--version")
    assert raised.type is outcome

"""compose.yaml against the code: images, topics, health checks, wiring, secrets."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.test_deploy_settings import (
    REPO,
    SERVICES,
    TOPICS_SCRIPT,
    WORKERS,
    Doc,
    compose,
    compose_environment,
    resolve_compose_value,
    served_paths,
)
from tests.unit.test_deploy_topics import script_topics
from tributary_shared.core.topics import ALL_TOPICS
from tributary_shared.runtime.settings import ConsumerSettings

PYTHON_SERVICES = ("gateway", *WORKERS, "scripted-llm")
LONG_RUNNING = ("kafka", "redis", *PYTHON_SERVICES)


def services() -> dict[str, Doc]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def duration_s(value: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert total > 0, value
    return total


def healthcheck_argv(service: Doc) -> list[str]:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list), test
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return [str(part) for part in test[1:]]


MONITORING = ("prometheus", "grafana")


def test_compose_defines_the_stack() -> None:
    assert set(services()) == {"kafka", "kafka-init", "redis", *PYTHON_SERVICES, *MONITORING}
    assert compose()["name"] == "tributary"


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_services_build_from_the_repo_root_with_their_dockerfile(name: str) -> None:
    service = services()[name]
    build = service["build"]
    context = (REPO / build["context"]).resolve()
    assert context == REPO, "every image builds from the workspace root"
    dockerfile = context / build["dockerfile"]
    assert dockerfile == SERVICES[name].directory / "Dockerfile"
    assert dockerfile.is_file()
    assert (context / ".dockerignore").is_file()
    assert service["image"].startswith(f"tributary/{name}:")


def test_kafka_is_a_single_kraft_node_of_apache_kafka_4_1() -> None:
    kafka = services()["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", kafka["image"]), kafka["image"]
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node = str(env["KAFKA_NODE_ID"])
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert str(env[key]) == "1", key
    # A KRaft cluster id: 16 bytes, url-safe base64 without padding.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    assert any(volume.endswith(":/var/lib/kafka/data") for volume in kafka["volumes"])
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


def test_topic_init_runs_the_shared_script_with_the_kafka_image() -> None:
    init = services()["kafka-init"]
    assert init["image"] == services()["kafka"]["image"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert str(init.get("restart", "no")) == "no"
    mounts = {}
    for volume in init["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = (REPO / source).resolve()
    script_target = next(arg for arg in init["entrypoint"] if arg.endswith(".sh"))
    assert mounts[script_target] == TOPICS_SCRIPT
    env = init["environment"]
    assert env["TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert str(env["TOPIC_REPLICATION_FACTOR"]) == "1"
    assert script_topics() == {topic.name: topic.partitions for topic in ALL_TOPICS}


def test_redis_keeps_an_append_only_file() -> None:
    redis = services()["redis"]
    assert re.fullmatch(r"redis:7(\.[\d.]+)?(-\w+)?", redis["image"]), redis["image"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_restart_and_have_healthchecks(name: str) -> None:
    service = services()[name]
    assert service["restart"] in ("unless-stopped", "always", "on-failure")
    assert healthcheck_argv(service)


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_healthchecks_hit_served_paths_on_the_configured_port(name: str) -> None:
    service = services()[name]
    script = " ".join(healthcheck_argv(service))
    match = re.search(r"http://127\.0\.0\.1:(?P<port>\d+)(?P<path>/[\w/]+)", script)
    assert match, script
    assert match["path"] in served_paths(name)
    if name != "scripted-llm":
        assert compose_environment(service)["TRIBUTARY_HTTP_PORT"] == match["port"]


def test_the_gateway_metrics_port_is_its_own_and_never_published() -> None:
    gateway = services()["gateway"]
    metrics_port = compose_environment(gateway)["TRIBUTARY_GATEWAY_METRICS_PORT"]
    assert metrics_port != compose_environment(gateway)["TRIBUTARY_HTTP_PORT"]
    published = [resolve_compose_value(port) for port in gateway["ports"]]
    assert all(not str(port).endswith(f":{metrics_port}") for port in published), published


def test_gateway_is_published_on_8000_of_this_machine_only_and_checks_readiness() -> None:
    gateway = services()["gateway"]
    published = [resolve_compose_value(port) for port in gateway["ports"]]
    # The API has no TLS of its own: other machines reach it only when asked for.
    assert published == ["127.0.0.1:8000:8000"]
    assert "/readyz" in " ".join(healthcheck_argv(gateway))
    assert compose_environment(gateway)["TRIBUTARY_HTTP_HOST"] == "0.0.0.0"


def test_nothing_is_published_beyond_this_machine_by_default() -> None:
    published = [
        (name, str(resolve_compose_value(port)))
        for name, service in services().items()
        for port in service.get("ports", [])
    ]
    assert published, "the gateway and Kafka's host listener are published"
    for name, port in published:
        assert port.startswith("127.0.0.1:"), (name, port)


def test_dependencies_wait_for_topics_and_healthy_infrastructure() -> None:
    all_services = services()
    for name, service in all_services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in all_services, (name, dependency)
            condition = rule["condition"]
            if dependency == "kafka-init":
                assert condition == "service_completed_successfully"
            else:
                assert condition == "service_healthy", (name, dependency)
                assert "healthcheck" in all_services[dependency]
    for name in ("gateway", *WORKERS):
        depends_on = all_services[name]["depends_on"]
        assert {"kafka-init", "redis"} <= set(depends_on), name


def test_scripted_llm_is_the_optional_offline_endpoint() -> None:
    all_services = services()
    assert all_services["scripted-llm"]["profiles"] == ["offline"]
    for name in WORKERS:
        rule = all_services[name]["depends_on"]["scripted-llm"]
        # Ignored when the profile is off (a real endpoint is configured).
        assert rule["required"] is False
        env = compose_environment(all_services[name])
        assert env["TRIBUTARY_LLM_BASE_URL"] == "http://scripted-llm:8199/v1"
    assert "scripted-llm" not in all_services["gateway"].get("depends_on", {})


def _raw_environment(service: Doc) -> dict[str, Any]:
    env = service.get("environment") or {}
    assert isinstance(env, dict)
    return env


def test_llm_api_key_comes_from_the_environment() -> None:
    all_services = services()
    for name in WORKERS:
        raw = _raw_environment(all_services[name])
        # Only the scripted LLM's dummy key may appear as a default.
        assert raw["TRIBUTARY_LLM_API_KEY"] == "${TRIBUTARY_LLM_API_KEY:-scripted-llm-key}"
        assert raw["TRIBUTARY_LLM_BASE_URL"].startswith("${TRIBUTARY_LLM_BASE_URL:-")
    for name, service in all_services.items():
        for key, value in _raw_environment(service).items():
            if re.search(r"KEY|TOKEN|SECRET|PASSWORD", key) and value is not None:
                assert str(value).startswith("${"), f"{name}: {key} is hard-coded"
    assert "TRIBUTARY_LLM_API_KEY" not in _raw_environment(all_services["gateway"])


def test_workers_get_time_to_drain_on_stop() -> None:
    grace = ConsumerSettings().shutdown_grace_s
    all_services = services()
    for name in WORKERS:
        assert duration_s(all_services[name]["stop_grace_period"]) > grace + 5, name


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_services_run_read_only_without_capabilities(name: str) -> None:
    service = services()[name]
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"]


@pytest.mark.parametrize("name", MONITORING)
def test_monitoring_is_optional_local_and_checked_for_health(name: str) -> None:
    service = services()[name]
    assert service["profiles"] == ["monitoring"]  # `up` without the profile starts neither
    assert service["restart"] == "unless-stopped"
    assert "healthcheck" in service
    (published,) = service["ports"]
    assert str(published).startswith("127.0.0.1:")
    for name_of_python_service in PYTHON_SERVICES:
        assert name not in services()[name_of_python_service].get("depends_on", {})


def test_grafana_provisions_the_dashboard_over_the_compose_prometheus() -> None:
    grafana = services()["grafana"]
    mounts = {str(volume).split(":")[0]: str(volume).split(":")[1] for volume in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/tributary.json"].startswith("/var/lib/grafana/dashboards/")
    assert (REPO / "deploy/grafana/tributary.json").is_file()
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"

"""Service catalogue, replica ports, environments and the Redis/LLM command lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from tributary_devstack.config import StackConfig
from tributary_devstack.llm import (
    SCRIPTED_LLM_API_KEY,
    llm_env,
    resolve_llm,
    scripted_llm_command,
)
from tributary_devstack.redis_config import redis_command
from tributary_devstack.services import (
    SERVICE_NAMES,
    SERVICES,
    gateway_metrics_port,
    instance_name,
    planned_ports,
    port_collisions,
    replica_port,
    resolve_service,
    service_command,
    service_env,
)


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    return StackConfig(run_dir=tmp_path, llm_base_url=None)


def test_catalogue_names_modules_and_health_paths() -> None:
    assert SERVICE_NAMES == ("planner", "agent-runner", "synthesizer", "gateway")
    modules = {s.name: s.module for s in SERVICES}
    assert modules == {
        "planner": "tributary_planner",
        "agent-runner": "tributary_agent_runner",
        "synthesizer": "tributary_synthesizer",
        "gateway": "tributary_gateway",
    }
    paths = {s.name: s.health_path for s in SERVICES}
    assert paths["gateway"] == "/readyz"
    assert {paths[n] for n in ("planner", "agent-runner", "synthesizer")} == {"/health"}


def test_services_resolve_by_name_or_module() -> None:
    assert resolve_service("agent-runner") is resolve_service("tributary_agent_runner")
    custom = resolve_service("some_module")
    assert (custom.name, custom.module, custom.health_path) == (
        "some-module",
        "some_module",
        "/health",
    )
    with pytest.raises(ValueError, match="unknown service"):
        resolve_service("rm -rf /")


def test_replica_ports_step_by_the_stride(config: StackConfig) -> None:
    runner = resolve_service("agent-runner")
    assert [replica_port(config, runner, i) for i in range(3)] == [8102, 8202, 8302]
    tight = StackConfig(run_dir=config.run_dir, replica_port_stride=1)
    assert replica_port(tight, runner, 2) == 8104


def test_default_ports_do_not_collide_for_many_replicas(config: StackConfig) -> None:
    for count in (1, 2, 5, 9):
        ports = planned_ports(config, dict.fromkeys(SERVICE_NAMES, count))
        assert port_collisions(ports) == [], count


def test_collisions_are_reported(config: StackConfig) -> None:
    tight = StackConfig(run_dir=config.run_dir, replica_port_stride=1)
    problems = port_collisions(planned_ports(tight, {"planner": 2, "agent-runner": 1}))
    assert problems == ["agent-runner-0 and planner-1 both want port 8102"] or problems == [
        "planner-1 and agent-runner-0 both want port 8102"
    ]


def test_service_env_wires_kafka_redis_http_and_instance(config: StackConfig) -> None:
    env = service_env(
        config,
        port=8202,
        instance="agent-runner-1",
        llm=llm_env(resolve_llm(config)),
        environ={"PATH": "/bin", "TRIBUTARY_HTTP_PORT": "1"},
        extra={"TRIBUTARY_LOG_LEVEL": "DEBUG"},
    )
    assert env["PATH"] == "/bin"
    assert env["TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert env["TRIBUTARY_REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert env["TRIBUTARY_HTTP_HOST"] == "127.0.0.1"
    assert env["TRIBUTARY_HTTP_PORT"] == "8202"  # the stack's wiring beats the caller's env
    assert env["TRIBUTARY_SERVICE_INSTANCE"] == "agent-runner-1"
    assert env["TRIBUTARY_LLM_BASE_URL"] == "http://127.0.0.1:8199/v1"
    assert env["TRIBUTARY_LLM_API_KEY"] == SCRIPTED_LLM_API_KEY
    assert env["TRIBUTARY_LOG_LEVEL"] == "DEBUG"


def test_caller_extra_env_overrides_the_wiring(config: StackConfig) -> None:
    env = service_env(
        config,
        port=1,
        instance="x",
        llm={"TRIBUTARY_LLM_BASE_URL": "http://a/v1"},
        environ={},
        extra={"TRIBUTARY_LLM_BASE_URL": "http://b/v1"},
    )
    assert env["TRIBUTARY_LLM_BASE_URL"] == "http://b/v1"


def test_external_llm_passes_the_url_and_never_sets_a_key(tmp_path: Path) -> None:
    endpoint = resolve_llm(StackConfig(run_dir=tmp_path, llm_base_url="https://llm.example/v1"))
    assert not endpoint.bundled
    assert llm_env(endpoint) == {"TRIBUTARY_LLM_BASE_URL": "https://llm.example/v1"}
    assert "https://llm.example/v1" in endpoint.describe()


def test_bundled_llm_is_described_as_such(config: StackConfig) -> None:
    endpoint = resolve_llm(config)
    assert endpoint.bundled
    assert "bundled scripted LLM" in endpoint.describe()
    assert SCRIPTED_LLM_API_KEY not in endpoint.describe()


def test_process_command_lines(config: StackConfig) -> None:
    assert service_command("/py", resolve_service("gateway")) == ["/py", "-m", "tributary_gateway"]
    assert scripted_llm_command("/py", 8199) == [
        "/py",
        "-m",
        "tributary_scripted_llm",
        "--host",
        "127.0.0.1",
        "--port",
        "8199",
    ]
    assert instance_name("planner", 2) == "planner-2"


def test_redis_runs_in_the_foreground_with_aof_and_no_snapshots(config: StackConfig) -> None:
    command = redis_command(config)

    def arg(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert command[0] == "redis-server"
    assert arg("--port") == "6379"
    assert arg("--bind") == "127.0.0.1"
    assert arg("--dir") == str(config.redis_dir)
    assert arg("--appendonly") == "yes"
    assert arg("--appendfsync") == "everysec"
    assert arg("--save") == ""
    assert arg("--daemonize") == "no"


def test_each_gateway_replica_gets_a_metrics_port_apart_from_every_other_port(
    config: StackConfig,
) -> None:
    ports = planned_ports(config, dict.fromkeys(SERVICE_NAMES, 3))
    metrics = [port for name, port in ports.items() if name.endswith(" metrics")]
    assert metrics == [gateway_metrics_port(config, i) for i in range(3)] == [8190, 8290, 8390]
    assert port_collisions(ports) == []
    clashing = StackConfig(run_dir=config.run_dir, gateway_metrics_http_port=8101)
    assert port_collisions(planned_ports(clashing, {"gateway": 1, "planner": 1})) != []

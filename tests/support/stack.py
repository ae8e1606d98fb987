"""Test wiring: the real Kafka and Redis, and the services as real OS processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tributary_devstack.config import StackConfig
from tributary_devstack.ports import free_port as devstack_free_port
from tributary_devstack.process import ServiceProcess
from tributary_devstack.stack import Stack
from tributary_shared.core.topology import deployed_roles

REPO = Path(__file__).resolve().parents[2]
WORKERS = tuple(role.service for role in deployed_roles() if role.group_id is not None)


def stack_config_for_tests() -> StackConfig:
    # Ports apart from the defaults so a developer's own stack keeps running.
    return StackConfig(
        run_dir=REPO / ".run" / "test",
        kafka_port=19092,
        kafka_controller_port=19093,
        redis_port=16379,
        gateway_metrics_http_port=18190,
        llm_base_url="http://127.0.0.1:1/v1",  # every service gets the test's LLM instead
    )


def free_port() -> int:
    """A free port below the ephemeral range: a restarted service can bind it again."""
    return devstack_free_port()


@dataclass
class RunningServices:
    """One set of service processes wired to the test infrastructure and an LLM."""

    stack: Stack
    processes: dict[str, ServiceProcess]
    gateway_url: str
    llm_base_url: str
    label: str
    env: dict[str, str]
    gateway_metrics_url: str = ""  # the gateway's /metrics, on a port apart from its API

    def process(self, name: str) -> ServiceProcess:
        return self.processes[name]

    def start(self, name: str) -> ServiceProcess:
        """Start (or restart) one service and wait until it is healthy."""
        proc = self.stack.start_service(
            name, port=free_port(), env=self._env_of(name), instance=f"{self.label}-{name}"
        )
        proc.wait_healthy(timeout=60)
        self.processes[name] = proc
        if name == "gateway":
            self.gateway_url = f"http://127.0.0.1:{proc.port}"
        return proc

    def _env_of(self, name: str) -> dict[str, str]:
        if name != "gateway":
            return self.env
        metrics_port = free_port()
        self.gateway_metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        return {**self.env, "TRIBUTARY_GATEWAY_METRICS_PORT": str(metrics_port)}

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.terminate(grace=10)
        if self in ACTIVE:
            ACTIVE.remove(self)

    def restart_all(self) -> None:
        for name in list(self.processes):
            self.start(name)
        ACTIVE.append(self)


ACTIVE: list[RunningServices] = []
"""Service sets now running; tests that need the topics to themselves pause them."""


UNLIMITED_QUOTAS = {
    "TRIBUTARY_GATEWAY_RATE_LIMIT_PER_S": "1000000",
    "TRIBUTARY_GATEWAY_RATE_LIMIT_BURST": "1000000",
    "TRIBUTARY_GATEWAY_MAX_STREAMS_PER_KEY": "1000000",
    "TRIBUTARY_TENANT_MAX_RUNNING_WORKFLOWS": "1000000",
}


def service_env(llm_base_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "TRIBUTARY_LLM_BASE_URL": llm_base_url,
        "TRIBUTARY_LLM_API_KEY": "test-key-not-secret",
        "TRIBUTARY_LLM_TIMEOUT_S": "5",
        "TRIBUTARY_LLM_MAX_ATTEMPTS": "3",
        "TRIBUTARY_LLM_MAX_BACKOFF_S": "2",
        "TRIBUTARY_LOG_LEVEL": "INFO",
        "TRIBUTARY_FALLBACK_MODEL": "fallback-model",
        # Tests share these processes: a model one test breaks must not be
        # skipped in the next (the circuit breaker has its own test).
        "TRIBUTARY_LLM_FALLBACK_COOLDOWN_S": "0",
        # Nor may one test's scripted outage open the shared breaker of the model
        # every test uses (test_provider_admission_e2e turns it on for its own).
        "TRIBUTARY_LLM_BREAKER_FAILURES": "0",
        "TRIBUTARY_KAFKA_SESSION_TIMEOUT_MS": "6000",
        # Every test calls from one address for one tenant, and some start hundreds of
        # workflows or thousands of streams: quotas out of their way (the quota test,
        # test_gateway_quotas_e2e, sets its own).
        **UNLIMITED_QUOTAS,
    }
    env.update(extra or {})
    return env


def start_services(
    stack: Stack,
    *,
    llm_base_url: str,
    label: str,
    extra_env: Mapping[str, str] | None = None,
    names: tuple[str, ...] = (*WORKERS, "gateway"),
) -> RunningServices:
    running = RunningServices(
        stack=stack,
        processes={},
        gateway_url="",
        llm_base_url=llm_base_url,
        label=label,
        env=service_env(llm_base_url, extra_env),
    )
    for name in names:
        running.processes[name] = stack.start_service(
            name, port=free_port(), env=running._env_of(name), instance=f"{label}-{name}"
        )
    for proc in running.processes.values():
        proc.wait_healthy(timeout=60)
    gateway = running.processes.get("gateway")
    if gateway is not None:
        running.gateway_url = f"http://127.0.0.1:{gateway.port}"
    ACTIVE.append(running)
    return running


async def until_dead(process: ServiceProcess, *, within: float = 60) -> None:
    """Until ``process`` has exited (a failpoint's kill, say); fails after ``within`` s."""
    # Polled rather than waited for: waiting would collect the exit status first.
    deadline = time.monotonic() + within
    while process.is_alive():
        assert time.monotonic() < deadline, f"{process.name} still running"
        await asyncio.sleep(0.1)

"""The stack under test: started through the devstack API on ports of its own.

Everything lives under its own run directory (default ``.run/bench``) and on
ports far from the developer (8000, 9092, 6379) and test (19092, 16379)
stacks, so a benchmark can run next to them. The bundled scripted LLM is
started by the stack as its own process; its latency is then set through its
admin API, which also switches its request recording off (recording every
request would cost the LLM process CPU that is not part of the workload).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import replicas as replica_plan
from tributary_devstack.config import StackConfig
from tributary_devstack.services import (
    GATEWAY,
    METRICS_PORT_VARIABLE,
    SERVICES,
    gateway_metrics_port,
    instance_name,
    replica_port,
    resolve_service,
)
from tributary_devstack.stack import SCRIPTED_LLM, Stack

DEFAULT_RUN_DIR = Path(".run/bench")


UNLIMITED_QUOTAS = {
    "TRIBUTARY_GATEWAY_RATE_LIMIT_PER_S": "1000000",
    "TRIBUTARY_GATEWAY_RATE_LIMIT_BURST": "1000000",
    "TRIBUTARY_GATEWAY_MAX_STREAMS_PER_KEY": "1000000",
    "TRIBUTARY_TENANT_MAX_RUNNING_WORKFLOWS": "1000000",
}


@dataclass(frozen=True)
class BenchPorts:
    kafka: int = 39092
    kafka_controller: int = 39093
    redis: int = 36379
    gateway: int = 38000
    gateway_metrics: int = 38190
    planner: int = 38101
    agent_runner: int = 38102
    synthesizer: int = 38103
    scripted_llm: int = 38199

    def shifted(self, offset: int) -> BenchPorts:
        """Every port moved by ``offset`` (when one of them is taken on this host)."""
        return BenchPorts(
            **{name: port + offset for name, port in dataclasses.asdict(self).items()}
        )


@dataclass
class BenchStack:
    """One stack for one scenario: fresh state on ``up``, everything stopped on ``down``."""

    run_dir: Path = DEFAULT_RUN_DIR
    ports: BenchPorts = field(default_factory=BenchPorts)
    tuning: Mapping[str, str] = field(default_factory=dict)
    #: Query string appended to the services' Redis URL (e.g. "max_connections=5000"),
    #: which redis-py reads as connection-pool options. Empty: the stack's own URL.
    redis_url_query: str = ""
    #: Processes per service (``replica_plan.replica_counts``); a missing service runs one.
    replicas: Mapping[str, int] = field(default_factory=replica_plan.replica_counts)
    say: Any = print
    _stack: Stack | None = None

    def config(self) -> StackConfig:
        p = self.ports
        return StackConfig(
            run_dir=self.run_dir,
            kafka_port=p.kafka,
            kafka_controller_port=p.kafka_controller,
            redis_port=p.redis,
            gateway_metrics_http_port=p.gateway_metrics,
            gateway_port=p.gateway,
            planner_port=p.planner,
            agent_runner_port=p.agent_runner,
            synthesizer_port=p.synthesizer,
            scripted_llm_port=p.scripted_llm,
            llm_base_url=None,  # the bundled scripted LLM, whatever the environment says
            replicas=1,
        )

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            environ = {
                k: v
                for k, v in os.environ.items()
                if k not in ("OPENAI_BASE_URL", "TRIBUTARY_LLM_BASE_URL")
            }
            # One driver, one address, one tenant, thousands of workflows: the
            # gateway's quotas would measure themselves, not the system.
            environ.update(UNLIMITED_QUOTAS)
            environ.update(self.tuning)
            self._stack = Stack(self.config(), say=self.say, environ=environ)
        return self._stack

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    @property
    def gateway_urls(self) -> list[str]:
        """Every gateway replica's address; the driver sends arrivals to each in turn."""
        config = self.stack.config
        spec = resolve_service(GATEWAY)
        return [
            f"http://127.0.0.1:{replica_port(config, spec, index)}"
            for index in range(self.replica_counts[GATEWAY])
        ]

    @property
    def llm_root_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.scripted_llm}"

    @property
    def llm_base_url(self) -> str:
        return f"{self.llm_root_url}/v1"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    def down(self) -> list[str]:
        return self.stack.down()

    def wipe(self) -> None:
        """Stop whatever runs in the run dir and delete its state (Kafka log, Redis AOF)."""
        self.down()
        for sub in ("kafka", "redis", "logs", "pids"):
            shutil.rmtree(self.stack.config.run_dir / sub, ignore_errors=True)

    @property
    def replica_counts(self) -> dict[str, int]:
        return replica_plan.replica_counts(self.replicas.items())

    def up(self, *, fresh: bool = True) -> None:
        """Start the stack with ``replicas`` processes per service, each one healthy."""
        if fresh:
            self.wipe()
        counts = self.replica_counts
        # Stack.scale checks one service's ports at a time; every replica at once here.
        self.stack.check_ports(counts)
        for service, why in replica_plan.idle_replicas(counts).items():
            self.say(f"note: {service}: {why}; the replicas past that count get no records")
        if self.redis_url_query:
            self._up_with_redis_url(counts)
        else:
            self.stack.up(replicas=1)
            for service, count in counts.items():
                if count != 1:
                    self.say(f"Scaling {service} to {count} replicas")
                    self.stack.scale(service, count)
        self.wait_replicas_healthy(counts)

    def _up_with_redis_url(self, counts: Mapping[str, int]) -> None:
        # The stack's wiring sets TRIBUTARY_REDIS_URL after the caller's environment;
        # only a service's own ``env`` (applied last) can change it.
        stack = self.stack
        stack.ensure_scripted_llm()
        stack.ensure_infra()
        url = f"{stack.config.redis_url}?{self.redis_url_query}"
        for spec in SERVICES:
            for index in range(counts.get(spec.name, 1)):
                env = {"TRIBUTARY_REDIS_URL": url}
                if spec.name == GATEWAY:
                    metrics_port = gateway_metrics_port(stack.config, index)
                    env[METRICS_PORT_VARIABLE] = str(metrics_port)
                instance = instance_name(spec.name, index)
                port = replica_port(stack.config, spec, index)
                self.say(
                    f"Starting {instance} on 127.0.0.1:{port} (Redis URL ?{self.redis_url_query})"
                )
                stack.start_service(spec.name, port=port, env=env, instance=instance)

    def wait_replicas_healthy(self, counts: Mapping[str, int]) -> None:
        for name in replica_plan.instances(counts):
            handle = self.stack.process(name)
            if handle is None:
                raise RuntimeError(f"{name} is not running; see {self.stack.config.logs_dir}")
            handle.wait_healthy(self.stack.config.startup_timeout_s)

    def partition_assignment(self, *, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until each consumer group has shared its partitions out among its replicas.

        Read from each replica's ``consumer_lag_records`` series (refreshed every
        few seconds). Returns partitions held per replica and whether every group
        settled within ``timeout_s``; a group that did not is named, not fatal.
        """
        groups = replica_plan.consumed_partitions()
        ports = self.component_ports()
        members = {
            service: names
            for service, names in replica_plan.service_replicas(ports).items()
            if service in groups
        }
        deadline = time.monotonic() + timeout_s
        while True:
            held = {
                service: {
                    name: replica_plan.assigned_partitions(
                        _metrics(ports[name]), groups[service][0]
                    )
                    for name in names
                }
                for service, names in members.items()
            }
            unsettled = sorted(
                service
                for service, by_replica in held.items()
                if not replica_plan.assignment_settled(by_replica, groups[service][1])
            )
            if not unsettled or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        if unsettled:
            self.say(f"note: partitions not yet shared out after {timeout_s:.0f} s: {unsettled}")
        return {
            "settled": not unsettled,
            "unsettled": unsettled,
            "partitions_held": {
                name: len(parts)
                for by_replica in held.values()
                for name, parts in by_replica.items()
            },
        }

    def up_llm_only(self, *, fresh: bool = True) -> None:
        if fresh:
            self.wipe()
        self.stack.ensure_scripted_llm()

    def pids(self) -> dict[str, int]:
        """Running components by name (kafka, redis, scripted-llm, gateway-0, ...)."""
        return {row.name: row.pid for row in self.stack.status() if row.pid is not None}

    def component_ports(self) -> dict[str, int]:
        return {row.name: row.port for row in self.stack.status() if row.port is not None}

    # -- the scripted LLM's admin API ------------------------------------------------

    def llm_config(self, **changes: int) -> dict[str, Any]:
        with httpx.Client(base_url=self.llm_root_url, timeout=10) as client:
            response = client.post("/_admin/config", json=changes)
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    def llm_clear_requests(self) -> None:
        with httpx.Client(base_url=self.llm_root_url, timeout=10) as client:
            client.delete("/_admin/requests").raise_for_status()

    def llm_requests(self) -> list[dict[str, Any]]:
        with httpx.Client(base_url=self.llm_root_url, timeout=30) as client:
            response = client.get("/_admin/requests")
            response.raise_for_status()
            result: list[dict[str, Any]] = response.json()
            return result

    def log_problems(self, *, top: int = 6) -> dict[str, dict[str, int]]:
        """WARNING and worse log lines of each service, counted by message."""
        out: dict[str, dict[str, int]] = {}
        for path in sorted(self.stack.config.logs_dir.glob("*.log")):
            counts: dict[str, int] = {}
            with path.open(errors="replace") as lines:
                for line in lines:
                    if not line.startswith("{"):
                        continue
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    level = str(entry.get("level", ""))
                    if level in ("WARNING", "ERROR", "CRITICAL"):
                        key = f"{level} {str(entry.get('message', ''))[:100]}"
                        counts[key] = counts.get(key, 0) + 1
            if counts:
                ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
                out[path.stem] = dict(ranked)
        return out

    def llm_pid(self) -> int | None:
        return self.pids().get(SCRIPTED_LLM)


def _metrics(port: int) -> str:
    try:
        with httpx.Client(timeout=5) as client:
            return client.get(f"http://127.0.0.1:{port}/metrics").text
    except httpx.HTTPError:
        return ""

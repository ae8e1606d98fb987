"""The stack: start, adopt, scale and stop Kafka, Redis, the LLM and the services.

Everything the stack starts is recorded in ``<run dir>/pids``; a later
``Stack`` over the same run dir adopts live processes instead of starting
duplicates, and stops exactly those (by pid) on ``stop_all``.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tributary_devstack import kafka_admin, kafka_broker, procs
from tributary_devstack.config import StackConfig
from tributary_devstack.infra import kafka_client_security, redis_client_options
from tributary_devstack.llm import (
    LlmEndpoint,
    llm_env,
    resolve_llm,
    scripted_llm_command,
    scripted_llm_health_url,
)
from tributary_devstack.pidfiles import (
    PidRecord,
    list_records,
    read_record,
    remove_record,
    replica_index,
    replica_names,
    write_record,
)
from tributary_devstack.ports import free_port
from tributary_devstack.process import (
    ManagedProcess,
    ServiceProcess,
    http_probe,
    new_record,
    wait_all_healthy,
)
from tributary_devstack.readiness import ComponentStartError, redis_ping
from tributary_devstack.redis_config import redis_acl, redis_command
from tributary_devstack.services import (
    GATEWAY,
    METRICS_PORT_VARIABLE,
    SERVICES,
    ServiceSpec,
    gateway_metrics_port,
    instance_name,
    planned_ports,
    port_collisions,
    replica_port,
    resolve_service,
    service_command,
    service_env,
)
from tributary_devstack.topics import TopicPlan
from tributary_shared.core.topics import ALL_TOPICS, TopicSpec
from tributary_shared.runtime.kafka.security import KafkaSecurity

KAFKA = "kafka"
REDIS = "redis"
SCRIPTED_LLM = "scripted-llm"
# Stop order for ``down``: intake first, infrastructure last.
_STOP_ORDER = ("gateway", "planner", "agent-runner", "synthesizer", SCRIPTED_LLM, KAFKA, REDIS)


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    pid: int | None
    port: int | None
    state: str  # "running", "unhealthy" (alive, not answering) or "stopped"
    log_path: Path


class Stack:
    """A local stack rooted at ``config.run_dir``.

    Methods are synchronous and safe to call from inside a running event loop
    (admin calls then run on a worker thread), so pytest fixtures of either
    kind can use them.
    """

    def __init__(
        self,
        config: StackConfig | None = None,
        *,
        say: Callable[[str], None] | None = None,
        environ: Mapping[str, str] | None = None,
        python: str = sys.executable,
        topics: tuple[TopicSpec, ...] = ALL_TOPICS,
    ) -> None:
        self.config = config if config is not None else StackConfig()
        self.llm: LlmEndpoint = resolve_llm(self.config)
        self.topics = topics
        self._say = say if say is not None else (lambda _message: None)
        self._environ = dict(os.environ if environ is None else environ)
        self._python = python
        # Handles of processes this object spawned or adopted, by name.
        self._handles: dict[str, ManagedProcess] = {}
        self._lock_depth = 0
        self._lock_file: int | None = None
        self._kafka_security: KafkaSecurity | None = None

    # ----------------------------------------------------------------- locking

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise stack changes across processes sharing the run dir (reentrant)."""
        if self._lock_depth == 0:
            self.config.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.config.run_dir / ".devstack.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_file = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                os.close(self._lock_file)
                self._lock_file = None

    # ----------------------------------------------------------------- lookups

    @property
    def pids_dir(self) -> Path:
        return self.config.pids_dir

    @property
    def kafka_security(self) -> KafkaSecurity:
        """How the stack's own clients connect to its broker (built once: it reads the CA)."""
        if self._kafka_security is None:
            self._kafka_security = kafka_client_security(self.config)
        return self._kafka_security

    def _probe_for(self, record: PidRecord) -> Callable[[], bool]:
        # Probe the port the process was started with, which may differ from
        # the current configuration if the environment changed since.
        if record.kind == KAFKA:
            bootstrap = f"127.0.0.1:{record.port or self.config.kafka_port}"
            return lambda: kafka_admin.broker_ready(bootstrap, security=self.kafka_security)
        if record.kind == REDIS:
            port = record.port or self.config.redis_port
            scheme = "rediss" if self.config.uses_tls else "redis"
            url = f"{scheme}://127.0.0.1:{port}/0"
            return lambda: redis_ping(url, redis_client_options(self.config))
        return http_probe(record.health_url)

    def _handle(self, record: PidRecord, process: psutil.Process) -> ManagedProcess:
        if record.kind in (KAFKA, REDIS):
            return ManagedProcess(record, self.pids_dir, self._probe_for(record), process)
        return ServiceProcess.from_record(record, self.pids_dir, process)

    def process(self, name: str) -> ManagedProcess | None:
        """The live process recorded as ``name``, or None (stale records are dropped)."""
        handle = self._handles.get(name)
        if handle is not None and handle.is_alive():
            return handle
        record = read_record(self.pids_dir, name)
        if record is None:
            return None
        process = procs.find(record.pid, record.create_time)
        if process is None:
            remove_record(self.pids_dir, name)
            return None
        if handle is not None and handle.pid == record.pid:
            return handle
        handle = self._handle(record, process)
        self._handles[name] = handle
        return handle

    def _ensure_port_free(self, component: str, port: int) -> None:
        # Checked before spawning: the component would otherwise die on bind()
        # and the error would be buried in its log.
        if procs.port_in_use(port):
            raise ComponentStartError(
                component,
                f"port {port} is already in use by a process this stack did not start "
                f"(run dir {self.config.run_dir}); stop it or choose another port",
                None,
            )

    def _spawn(
        self,
        *,
        name: str,
        kind: str,
        command: list[str],
        env: Mapping[str, str],
        port: int | None,
        health_url: str | None = None,
        module: str | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        log_path = self.config.logs_dir / f"{name}.log"
        process = procs.spawn(command, log_path=log_path, env=env, cwd=cwd or self.config.repo_root)
        return self._register(
            new_record(
                name=name,
                kind=kind,
                process=process,
                command=command,
                log_path=log_path,
                port=port,
                health_url=health_url,
                module=module,
            ),
            process,
        )

    def _register(self, record: PidRecord, process: psutil.Process) -> ManagedProcess:
        write_record(self.pids_dir, record)
        handle = self._handle(record, process)
        self._handles[record.name] = handle
        return handle

    # ------------------------------------------------------------ infrastructure

    def _launch_redis(self) -> ManagedProcess:
        existing = self.process(REDIS)
        if existing is not None:
            return existing
        self._ensure_port_free(REDIS, self.config.redis_port)
        self.config.redis_dir.mkdir(parents=True, exist_ok=True)
        if self.config.uses_passwords:
            kafka_broker.write_private(self.config.redis_acl_path, redis_acl(self.config).encode())
        self._say(f"Starting Redis on 127.0.0.1:{self.config.redis_port}")
        return self._spawn(
            name=REDIS,
            kind=REDIS,
            command=redis_command(self.config),
            env=self._environ,
            port=self.config.redis_port,
            cwd=self.config.redis_dir,
        )

    def _launch_kafka(self) -> ManagedProcess:
        existing = self.process(KAFKA)
        if existing is not None:
            return existing
        log_path = kafka_broker.kafka_log_path(self.config)
        for port in (self.config.kafka_port, self.config.kafka_controller_port):
            self._ensure_port_free(KAFKA, port)
        kafka_broker.ensure_libs(self.config, self._say)
        self._say(f"Starting Kafka {self.config.kafka_version} on {self.config.kafka_bootstrap}")
        process, command = kafka_broker.spawn_broker(self.config)
        return self._register(
            new_record(
                name=KAFKA,
                kind=KAFKA,
                process=process,
                command=command,
                log_path=log_path,
                port=self.config.kafka_port,
            ),
            process,
        )

    def ensure_redis(self) -> ManagedProcess:
        """Redis answering PING, started unless already running."""
        with self._locked():
            handle = self._launch_redis()
            handle.wait_healthy(self.config.startup_timeout_s)
            return handle

    def start_kafka(self) -> ManagedProcess:
        """The broker answering admin calls, started unless already running."""
        with self._locked():
            handle = self._launch_kafka()
            handle.wait_healthy(self.config.startup_timeout_s)
            return handle

    ensure_kafka = start_kafka

    def ensure_topics(self) -> TopicPlan:
        """Create the topics of ``self.topics`` with their partition counts."""
        plan = kafka_admin.ensure_topics(
            self.config.kafka_bootstrap, self.topics, security=self.kafka_security
        )
        if plan.create:
            self._say("Created topics: " + ", ".join(s.name for s in plan.create))
        for name, (have, want) in plan.oversized.items():
            self._say(f"Note: topic {name} has {have} partitions (spec says {want}); left as is")
        return plan

    def ensure_infra(self) -> None:
        """Kafka + Redis running and answering, and the topics created.

        Both are launched before either is waited for, so startup costs the
        slower of the two rather than their sum.
        """
        with self._locked():
            redis_handle = self._launch_redis()
            kafka_handle = self._launch_kafka()
            wait_all_healthy([redis_handle, kafka_handle], self.config.startup_timeout_s)
            self.ensure_topics()

    def stop_kafka(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after the grace period); data is kept."""
        with self._locked():
            self._stop(KAFKA)

    def stop_redis(self) -> None:
        """Stop Redis the same way; its append-only file is kept."""
        with self._locked():
            self._stop(REDIS)

    # -------------------------------------------------------------------- LLM

    def _launch_scripted_llm(self) -> ServiceProcess | None:
        if not self.llm.bundled:
            return None
        existing = self.process(SCRIPTED_LLM)
        if isinstance(existing, ServiceProcess):
            return existing
        port = self.config.scripted_llm_port
        self._ensure_port_free(SCRIPTED_LLM, port)
        env = {**self._environ, "PYTHONUNBUFFERED": "1"}
        self._say(f"Starting the bundled scripted LLM on 127.0.0.1:{port}")
        handle = self._spawn(
            name=SCRIPTED_LLM,
            kind="llm",
            command=scripted_llm_command(self._python, port),
            env=env,
            port=port,
            health_url=scripted_llm_health_url(port),
            module="tributary_scripted_llm",
        )
        assert isinstance(handle, ServiceProcess)
        return handle

    def ensure_scripted_llm(self) -> ServiceProcess | None:
        """The bundled scripted LLM, when no external endpoint is configured."""
        with self._locked():
            handle = self._launch_scripted_llm()
            if handle is not None:
                handle.wait_healthy(self.config.startup_timeout_s)
            return handle

    # --------------------------------------------------------------- services

    def service_env(
        self, *, port: int, instance: str, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment a service replica is started with."""
        return service_env(
            self.config,
            port=port,
            instance=instance,
            llm=llm_env(self.llm),
            environ=self._environ,
            extra=extra,
        )

    def _spawn_service(
        self, spec: ServiceSpec, *, port: int, instance: str, env: Mapping[str, str] | None
    ) -> ServiceProcess:
        self._ensure_port_free(instance, port)
        if self.config.infra_password is not None:
            # The services read the password from this file (see infra.infra_env).
            kafka_broker.write_private(
                self.config.infra_password_path,
                self.config.infra_password.get_secret_value().encode(),
            )
        handle = self._spawn(
            name=instance,
            kind="service",
            command=service_command(self._python, spec),
            env=self.service_env(port=port, instance=instance, extra=env),
            port=port,
            health_url=spec.health_url(port),
            module=spec.module,
        )
        assert isinstance(handle, ServiceProcess)
        return handle

    def start_service(
        self,
        module_or_name: str,
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        instance: str,
    ) -> ServiceProcess:
        """Start a fresh process of a service; does not wait for health.

        ``env`` overrides the stack's wiring (it is applied last). A live
        process already recorded under ``instance`` is stopped first, because
        it may have been started with different settings.
        """
        spec = resolve_service(module_or_name)
        if spec.name == GATEWAY and METRICS_PORT_VARIABLE not in (env or {}):
            # Its metrics server needs a port too; the caller chose only the API's.
            env = {**(env or {}), METRICS_PORT_VARIABLE: str(free_port())}
        with self._locked():
            self._stop(instance)
            return self._spawn_service(spec, port=port, instance=instance, env=env)

    def _launch_replica(self, spec: ServiceSpec, index: int) -> ServiceProcess:
        instance = instance_name(spec.name, index)
        existing = self.process(instance)
        if isinstance(existing, ServiceProcess):
            return existing
        port = replica_port(self.config, spec, index)
        self._say(f"Starting {instance} on 127.0.0.1:{port}")
        env = None
        if spec.name == GATEWAY:
            env = {METRICS_PORT_VARIABLE: str(gateway_metrics_port(self.config, index))}
        return self._spawn_service(spec, port=port, instance=instance, env=env)

    def _replica_indexes(self, service: str) -> list[int]:
        names = replica_names(list_records(self.pids_dir), service)
        return sorted(replica_index(name) for name in names if self.process(name) is not None)

    def check_ports(self, replicas: Mapping[str, int]) -> None:
        problems = port_collisions(planned_ports(self.config, replicas))
        if problems:
            raise ValueError("port collision: " + "; ".join(problems))

    def up(self, *, replicas: int | None = None, infra_only: bool = False) -> None:
        """Start whatever is missing; running components are reused."""
        count = replicas if replicas is not None else self.config.replicas
        with self._locked():
            self.check_ports({} if infra_only else {s.name: count for s in SERVICES})
            llm_handle = None if infra_only else self._launch_scripted_llm()
            self.ensure_infra()
            if infra_only:
                return
            started: list[ManagedProcess] = [llm_handle] if llm_handle is not None else []
            started.extend(self._launch_replica(s, i) for s in SERVICES for i in range(count))
            wait_all_healthy(started, self.config.startup_timeout_s)

    def scale(self, service: str, replicas: int) -> list[ServiceProcess]:
        """Run exactly ``replicas`` replicas of ``service``; extra ones get SIGTERM."""
        spec = resolve_service(service)
        if spec not in SERVICES:
            raise ValueError(f"cannot scale {service!r}; known: {[s.name for s in SERVICES]}")
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        with self._locked():
            current = self._replica_indexes(spec.name)
            wanted = set(range(replicas))
            self.check_ports({spec.name: max([replicas, *[i + 1 for i in current]])})
            for index in sorted(set(current) - wanted, reverse=True):
                self._say(f"Stopping {instance_name(spec.name, index)}")
                self._stop(instance_name(spec.name, index))
            if not wanted:
                return []
            llm_handle = self._launch_scripted_llm()
            self.ensure_infra()
            handles = [self._launch_replica(spec, i) for i in sorted(wanted)]
            waiting: list[ManagedProcess] = [*handles]
            if llm_handle is not None:
                waiting.append(llm_handle)
            wait_all_healthy(waiting, self.config.startup_timeout_s)
            return handles

    # --------------------------------------------------------------- stopping

    def _stop(self, name: str) -> bool:
        """Stop ``name`` if it runs; always drop its pid files. True if it ran."""
        handle = self.process(name)
        self._handles.pop(name, None)
        if handle is None:
            remove_record(self.pids_dir, name)
            return False
        handle.terminate(self.config.stop_grace_s)
        return True

    def stop_all(self) -> list[str]:
        """Stop everything recorded in the run dir; returns the names that were running."""
        with self._locked():
            names = [r.name for r in list_records(self.pids_dir)]
            ordered = sorted(names, key=_stop_rank)
            return [name for name in ordered if self._stop(name)]

    down = stop_all

    # ----------------------------------------------------------------- status

    def expected_components(self) -> list[str]:
        """Components ``up`` would start with one replica, plus recorded ones, in order."""
        names = [KAFKA, REDIS]
        if self.llm.bundled:
            names.append(SCRIPTED_LLM)
        recorded = list_records(self.pids_dir)
        for spec in SERVICES:
            indexes = {0, *(replica_index(n) for n in replica_names(recorded, spec.name))}
            names.extend(instance_name(spec.name, i) for i in sorted(indexes))
        names.extend(r.name for r in recorded if r.name not in names)
        return names

    def status(self) -> list[ComponentStatus]:
        result = []
        for name in self.expected_components():
            handle = self.process(name)
            if handle is None:
                result.append(
                    ComponentStatus(
                        name,
                        None,
                        self._default_port(name),
                        "stopped",
                        self.config.logs_dir / f"{name}.log",
                    )
                )
                continue
            state = "running" if handle.is_healthy() else "unhealthy"
            result.append(ComponentStatus(name, handle.pid, handle.port, state, handle.log_path))
        return result

    def _default_port(self, name: str) -> int | None:
        fixed = {
            KAFKA: self.config.kafka_port,
            REDIS: self.config.redis_port,
            SCRIPTED_LLM: self.config.scripted_llm_port,
        }
        if name in fixed:
            return fixed[name]
        for spec in SERVICES:
            if name.startswith(spec.name + "-"):
                try:
                    return replica_port(self.config, spec, replica_index(name))
                except ValueError:
                    return None
        return None


def _stop_rank(name: str) -> tuple[int, str]:
    for rank, prefix in enumerate(_STOP_ORDER):
        if name == prefix or name.startswith(prefix + "-"):
            return (rank, name)
    return (-1, name)  # unknown (e.g. ad-hoc test services): stop before infra

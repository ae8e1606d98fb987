"""The catalogue of services and how each replica is launched (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tributary_devstack.config import StackConfig
from tributary_devstack.infra import infra_env, without_owned


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str  # CLI name, also the prefix of instance names ("agent-runner-0")
    module: str  # run as ``python -m <module>``
    health_path: str
    port_field: str | None  # StackConfig attribute with the base port

    def base_port(self, config: StackConfig) -> int:
        if self.port_field is None:
            raise ValueError(f"{self.name} has no configured base port; pass one explicitly")
        port: int = getattr(config, self.port_field)
        return port

    def health_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}{self.health_path}"


# Start order: workers first so the gateway's first requests find consumers.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("planner", "tributary_planner", "/health", "planner_port"),
    ServiceSpec("agent-runner", "tributary_agent_runner", "/health", "agent_runner_port"),
    ServiceSpec("synthesizer", "tributary_synthesizer", "/health", "synthesizer_port"),
    # /readyz, not /health: the gateway is ready only once Kafka and Redis answer.
    ServiceSpec("gateway", "tributary_gateway", "/readyz", "gateway_port"),
)
SERVICE_NAMES = tuple(s.name for s in SERVICES)


def resolve_service(name_or_module: str) -> ServiceSpec:
    """Look up a service by CLI name or module; unknown modules get ``/health``."""
    for spec in SERVICES:
        if name_or_module in (spec.name, spec.module):
            return spec
    if name_or_module.replace("_", "").replace(".", "").isalnum():
        return ServiceSpec(name_or_module.replace("_", "-"), name_or_module, "/health", None)
    raise ValueError(f"unknown service {name_or_module!r}; known: {', '.join(SERVICE_NAMES)}")


def instance_name(service: str, index: int) -> str:
    return f"{service}-{index}"


def replica_port(config: StackConfig, spec: ServiceSpec, index: int) -> int:
    """Port of replica ``index``: the base port plus ``index`` strides."""
    return spec.base_port(config) + index * config.replica_port_stride


GATEWAY = "gateway"
METRICS_PORT_VARIABLE = "TRIBUTARY_GATEWAY_METRICS_PORT"


def gateway_metrics_port(config: StackConfig, index: int) -> int:
    """Port of gateway replica ``index``'s metrics server: its base plus ``index`` strides."""
    return config.gateway_metrics_http_port + index * config.replica_port_stride


def service_command(python: str, spec: ServiceSpec) -> list[str]:
    return [python, "-m", spec.module]


def service_env(
    config: StackConfig,
    *,
    port: int,
    instance: str,
    llm: Mapping[str, str],
    environ: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment of one service process.

    Precedence, lowest first: the caller's environment (less the connection
    variables the stack owns), the stack's wiring (Kafka, Redis and how to
    reach them, HTTP, instance, LLM), then ``extra`` from the caller.
    """
    env = without_owned(environ)
    env.update(llm)
    env.update(infra_env(config))
    env.update(
        {
            "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS": config.kafka_bootstrap,
            "TRIBUTARY_REDIS_URL": config.redis_url,
            "TRIBUTARY_HTTP_HOST": "127.0.0.1",
            "TRIBUTARY_HTTP_PORT": str(port),
            "TRIBUTARY_SERVICE_INSTANCE": instance,
            # Logs go to a file: without this, Python would block-buffer them.
            "PYTHONUNBUFFERED": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def planned_ports(config: StackConfig, replicas: Mapping[str, int]) -> dict[str, int]:
    """component -> port for infra and every planned replica (for collision checks)."""
    ports = {
        "kafka": config.kafka_port,
        "kafka-controller": config.kafka_controller_port,
        "redis": config.redis_port,
    }
    if not config.llm_base_url:
        ports["scripted-llm"] = config.scripted_llm_port
    for spec in SERVICES:
        for index in range(replicas.get(spec.name, 0)):
            ports[instance_name(spec.name, index)] = replica_port(config, spec, index)
            if spec.name == GATEWAY:
                ports[f"{instance_name(spec.name, index)} metrics"] = gateway_metrics_port(
                    config, index
                )
    return ports


def port_collisions(ports: Mapping[str, int]) -> list[str]:
    """Human-readable descriptions of components planned on the same port."""
    seen: dict[int, str] = {}
    problems = []
    for component, port in ports.items():
        if port in seen:
            problems.append(f"{seen[port]} and {component} both want port {port}")
        else:
            seen[port] = component
    return problems

"""deploy/k8s against the Kubernetes schemas (kubernetes-validate, offline) and the code:
probes, ports, security, disruption budgets and KEDA scaling. Secrets and network
policies have their own module, test_deploy_k8s_security."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions

from tests.unit.test_deploy_settings import (
    K8S_DIR,
    SERVICES,
    WORKERS,
    Doc,
    build_gateway_app,
    build_worker_app,
    configmap_data,
    k8s_docs,
    k8s_manifest_files,
    load_yaml_docs,
    served_paths,
)
from tributary_shared.core.topics import ALL_TOPICS
from tributary_shared.runtime.settings import ConsumerSettings

#: Oldest Kubernetes the manifests target (the preStop ``sleep`` action is on by default
#: from 1.30) and the newest the bundled schemas know.
K8S_VERSIONS = ("1.30", all_versions()[-1])
#: Custom resources, checked by hand below (no bundled schema).
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
APP_SERVICES = ("gateway", *WORKERS)
PARTITIONS = {topic.name: topic.partitions for topic in ALL_TOPICS}


def kustomization() -> Doc:
    return load_yaml_docs(K8S_DIR / "kustomization.yaml")[0]


@cache
def applied_docs() -> list[Doc]:
    """What ``kubectl apply -k deploy/k8s`` creates (generated ConfigMap aside)."""
    return [doc for name in kustomization()["resources"] for doc in load_yaml_docs(K8S_DIR / name)]


def of_kind(kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in applied_docs() if doc["kind"] == kind}


def pod_spec(service: str) -> Doc:
    spec = of_kind("Deployment")[service]["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def container(service: str) -> Doc:
    (main,) = pod_spec(service)["containers"]
    assert isinstance(main, dict)
    return main


def env_of(main: Doc) -> dict[str, Doc]:
    return {item["name"]: item for item in main.get("env", [])}


def http_port(main: Doc) -> int:
    env = env_of(main)
    return int(env["TRIBUTARY_HTTP_PORT"]["value"])


def probe_port(main: Doc, probe: Doc) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (named,) = [p for p in main["ports"] if p["name"] == port]
    return int(named["containerPort"])


def probes(main: Doc) -> Iterator[tuple[str, Doc]]:
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        if kind in main:
            yield kind, main[kind]


# --- files and schemas --------------------------------------------------------------------


def test_kustomization_lists_every_top_level_manifest() -> None:
    resources = kustomization()["resources"]
    assert len(resources) == len(set(resources))
    for name in resources:
        assert (K8S_DIR / name).is_file(), name
    top_level = {path.name for path in K8S_DIR.glob("*.yaml") if path.name != "kustomization.yaml"}
    assert set(resources) == top_level
    assert kustomization()["namespace"] == "tributary"
    for generator in kustomization().get("configMapGenerator", []):
        for file in generator["files"]:
            assert (K8S_DIR / file).is_file(), file


def test_manifests_exist_for_every_expected_kind() -> None:
    kinds = {doc["kind"] for doc in applied_docs()}
    expected = {"Namespace", "ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    assert (
        expected | {"PodDisruptionBudget", "ScaledObject", "TriggerAuthentication", "Job"} <= kinds
    )
    assert set(of_kind("Deployment")) == set(APP_SERVICES)
    assert set(of_kind("Service")) == set(APP_SERVICES)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version: str) -> None:
    checked = 0
    for path, doc in k8s_docs():
        key = (doc["apiVersion"], doc["kind"])
        if key in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc}")
        checked += 1
    # Namespace, ConfigMap, 4 Deployments, 4 Services, 4 PDBs, Job, 6 NetworkPolicies,
    # 3 example Secrets.
    assert checked >= 24


def test_only_known_custom_resources_skip_the_schemas() -> None:
    for path, doc in k8s_docs():
        key = (doc["apiVersion"], doc["kind"])
        try:
            kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert key in CUSTOM_KINDS, f"{path.name}: no schema for {key}"
        else:
            assert key not in CUSTOM_KINDS


def test_the_validator_rejects_a_mistyped_manifest() -> None:
    deployment = copy.deepcopy(of_kind("Deployment")["planner"])
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    main["livenesProbe"] = main.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_namespaced_resources_live_in_the_tributary_namespace() -> None:
    for path, doc in k8s_docs():
        if "strimzi" in path.parts or doc["kind"] == "Namespace":
            continue
        assert doc["metadata"].get("namespace") == "tributary", (path.name, doc["kind"])


# --- deployments ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", APP_SERVICES)
def test_deployment_runs_the_service_image(service: str) -> None:
    main = container(service)
    assert main["image"].rpartition(":")[0] == f"tributary/{service}"
    images = {entry["name"] for entry in kustomization()["images"]}
    assert f"tributary/{service}" in images
    assert SERVICES[service].module  # the image's CMD is checked in test_deploy_dockerfiles


@pytest.mark.parametrize("service", APP_SERVICES)
def test_probes_use_served_paths_on_the_service_port(service: str) -> None:
    main = container(service)
    port = http_port(main)
    # The gateway's metrics have a port of their own (test_deploy_k8s_security checks it).
    extra = {"metrics"} if service == "gateway" else set()
    assert [p["containerPort"] for p in main["ports"] if p["name"] not in extra] == [port]
    found = dict(probes(main))
    assert {"livenessProbe", "readinessProbe"} <= set(found)
    for kind, probe in found.items():
        assert probe["httpGet"]["path"] in served_paths(service), (service, kind)
        assert probe_port(main, probe) == port, (service, kind)
    if service == "gateway":
        assert found["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert found["readinessProbe"]["httpGet"]["path"] == "/readyz"
    else:
        assert found["livenessProbe"]["httpGet"]["path"] == "/livez"
        others = [probe for kind, probe in found.items() if kind != "livenessProbe"]
        assert all(probe["httpGet"]["path"] == "/health" for probe in others)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_pods_are_locked_down(service: str) -> None:
    pod = pod_spec(service)
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    # Service links would add variables such as GATEWAY_PORT to the environment.
    assert pod["enableServiceLinks"] is False
    main = container(service)
    context = main["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"] for mount in main["volumeMounts"]}
    assert "/tmp" in mounts


@pytest.mark.parametrize("service", APP_SERVICES)
def test_resources_have_requests_and_limits(service: str) -> None:
    resources = container(service)["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), (service, section)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_termination_grace_outlasts_the_consumer_drain(service: str) -> None:
    configured = float(configmap_data().get("TRIBUTARY_SHUTDOWN_GRACE_S", "nan"))
    assert configured == configured, "the ConfigMap sets TRIBUTARY_SHUTDOWN_GRACE_S"
    grace = pod_spec(service)["terminationGracePeriodSeconds"]
    assert grace > configured
    if service in WORKERS:
        # uvicorn's own graceful stop (5 s) comes before the consumer drain.
        assert grace >= configured + 10
    assert ConsumerSettings.model_fields["shutdown_grace_s"].default <= configured


@pytest.mark.parametrize("service", APP_SERVICES)
def test_configuration_comes_from_the_configmap_and_the_pod(service: str) -> None:
    main = container(service)
    assert {"configMapRef": {"name": "tributary-config"}} in main["envFrom"]
    env = env_of(main)
    instance = env["TRIBUTARY_SERVICE_INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert instance == "metadata.name"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_selects_the_deployment_pods(service: str) -> None:
    svc = of_kind("Service")[service]
    deployment = of_kind("Deployment")[service]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    main = container(service)
    port_names = {p["name"]: p["containerPort"] for p in main["ports"]}
    for port in svc["spec"]["ports"]:
        target = port["targetPort"]
        assert target in port_names or target in port_names.values()
    # Another app's pods must not match: the name label tells them apart.
    for other in APP_SERVICES:
        if other != service:
            other_labels = of_kind("Deployment")[other]["spec"]["template"]["metadata"]["labels"]
            assert not svc["spec"]["selector"].items() <= other_labels.items()


# --- gateway availability -------------------------------------------------------------------


def disruption_budget(service: str) -> Doc:
    """The one PodDisruptionBudget selecting the service's pods."""
    labels = of_kind("Deployment")[service]["spec"]["template"]["metadata"]["labels"]
    found = [
        pdb
        for pdb in of_kind("PodDisruptionBudget").values()
        if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(found) == 1, (service, [pdb["metadata"]["name"] for pdb in found])
    return found[0]


def test_gateway_has_a_fixed_replica_count_and_a_disruption_budget() -> None:
    gateway = of_kind("Deployment")["gateway"]
    replicas = gateway["spec"]["replicas"]
    assert isinstance(replicas, int)
    assert replicas >= 2
    autoscalers = [*of_kind("ScaledObject").values(), *of_kind("HorizontalPodAutoscaler").values()]
    targets = [doc["spec"]["scaleTargetRef"]["name"] for doc in autoscalers]
    assert "gateway" not in targets
    pdb = disruption_budget("gateway")
    assert 1 <= pdb["spec"]["minAvailable"] < replicas


@pytest.mark.parametrize("service", WORKERS)
def test_workers_have_a_disruption_budget_that_never_blocks_a_drain(service: str) -> None:
    """One pod at a time; a worker runs a single replica when idle (KEDA's minimum), and a
    budget demanding one available would block every node drain."""
    spec = disruption_budget(service)["spec"]
    assert spec["maxUnavailable"] == 1
    assert "minAvailable" not in spec


@pytest.mark.parametrize("service", APP_SERVICES)
def test_unready_pods_never_hold_a_drain_up(service: str) -> None:
    assert disruption_budget(service)["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_every_disruption_budget_selects_a_deployment() -> None:
    budgets = of_kind("PodDisruptionBudget")
    assert len(budgets) == len(APP_SERVICES)
    assert {disruption_budget(service)["metadata"]["name"] for service in APP_SERVICES} == set(
        budgets
    )


# --- KEDA -----------------------------------------------------------------------------------

SCALED_OBJECT_SPEC_KEYS = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "advanced",
    "fallback",
    "triggers",
}
KAFKA_TRIGGER_KEYS = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "partitionLimitation",
    "version",
    "sasl",
    "tls",
}
#: TRIBUTARY_KAFKA_SASL_MECHANISM -> the KEDA kafka scaler's ``sasl``.
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
#: What a TriggerAuthentication may hand the kafka scaler.
KEDA_KAFKA_AUTH_PARAMETERS = {
    "sasl",
    "username",
    "password",
    "tls",
    "ca",
    "cert",
    "key",
    "keyPassword",
}


def scaled_objects() -> dict[str, Doc]:
    found = of_kind("ScaledObject")
    assert found, "ScaledObjects are part of the kustomization"
    return found


def test_every_worker_has_exactly_one_scaled_object() -> None:
    targets = [doc["spec"]["scaleTargetRef"]["name"] for doc in scaled_objects().values()]
    assert sorted(targets) == sorted(WORKERS)


@pytest.mark.parametrize("service", WORKERS)
def test_scaled_object_scales_the_deployment_on_kafka_lag(service: str) -> None:
    """Shape of the trigger; its group and topics are held to the topology in test_topology."""
    (scaled,) = [
        doc for doc in scaled_objects().values() if doc["spec"]["scaleTargetRef"]["name"] == service
    ]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC_KEYS, set(spec) - SCALED_OBJECT_SPEC_KEYS
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    assert target["name"] in of_kind("Deployment")
    assert spec["triggers"], "at least one trigger"
    triggered = []
    for trigger in spec["triggers"]:
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        assert set(metadata) <= KAFKA_TRIGGER_KEYS, set(metadata) - KAFKA_TRIGGER_KEYS
        assert all(isinstance(value, str) for value in metadata.values()), "KEDA wants strings"
        assert int(metadata["lagThreshold"]) >= 1
        assert metadata["bootstrapServers"] == configmap_data()["TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS"]
        assert metadata.get("offsetResetPolicy", "latest") == "earliest"
        # KEDA connects as the services do: same TLS, same SASL mechanism, same user.
        config = configmap_data()
        protocol = config.get("TRIBUTARY_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
        tls = "enable" if protocol in ("SSL", "SASL_SSL") else "disable"
        assert metadata.get("tls", "disable") == tls
        mechanism = config.get("TRIBUTARY_KAFKA_SASL_MECHANISM")
        assert metadata.get("sasl", "none") == (KEDA_SASL[mechanism] if mechanism else "none")
        if protocol != "PLAINTEXT":
            auth = trigger["authenticationRef"]
            assert auth.get("kind", "TriggerAuthentication") == "TriggerAuthentication"
            assert auth["name"] in of_kind("TriggerAuthentication")
        triggered.append(metadata["topic"])
    # No replica beyond any of its topics' partition counts.
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert all(spec["maxReplicaCount"] <= PARTITIONS[topic] for topic in triggered)
    # KEDA owns the replica count.
    assert "replicas" not in of_kind("Deployment")[service]["spec"]


def test_the_trigger_authentication_hands_the_scaler_the_services_kafka_user() -> None:
    (auth,) = of_kind("TriggerAuthentication").values()
    assert set(auth["spec"]) == {"secretTargetRef"}
    refs = {ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    assert set(refs) <= KEDA_KAFKA_AUTH_PARAMETERS
    assert refs["username"] == ("tributary-kafka", "username")
    assert refs["password"] == ("tributary-kafka", "password")
    assert refs["ca"] == ("tributary-kafka", "ca.crt")


# --- the probe paths answer ------------------------------------------------------------------


async def _get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        return await client.get(path)


@pytest.mark.parametrize("service", WORKERS)
async def test_worker_health_answers_and_reports_a_stopped_consumer(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 9: the Redis ping fails fast.
    monkeypatch.setenv("TRIBUTARY_REDIS_URL", "redis://127.0.0.1:9/0")
    app = build_worker_app(service)
    health = await _get(app, "/health")
    assert health.status_code == 503
    assert health.json()["service"] == service
    assert health.json()["consumer"] == "stopped"
    live = await _get(app, "/livez")
    assert live.status_code == 200  # Redis being away is no reason to restart
    metrics = await _get(app, "/metrics")
    assert metrics.status_code == 200
    missing = await _get(app, "/healthz")
    assert missing.status_code == 404


async def test_gateway_liveness_answers_without_dependencies() -> None:
    app = build_gateway_app()
    assert (await _get(app, "/healthz")).status_code == 200
    assert (await _get(app, "/health")).status_code == 404


def test_probe_files_are_inside_the_repo() -> None:
    assert all(Path(path).is_relative_to(K8S_DIR) for path in k8s_manifest_files())


# --- monitoring (optional: needs the Prometheus Operator's CRDs) ------------------------------


def pod_monitors() -> dict[str, Doc]:
    docs = load_yaml_docs(K8S_DIR / "monitoring" / "podmonitors.yaml")
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "PodMonitor"}


def test_pod_monitors_are_optional_since_they_need_the_operators_crds() -> None:
    assert "monitoring/podmonitors.yaml" not in kustomization()["resources"]
    assert not [doc for doc in applied_docs() if doc["kind"] == "PodMonitor"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_exactly_one_pod_monitor_scrapes_each_service_on_its_metrics_port(service: str) -> None:
    pod_labels = of_kind("Deployment")[service]["spec"]["template"]["metadata"]["labels"]
    selecting = [
        monitor
        for monitor in pod_monitors().values()
        if monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ]
    assert len(selecting) == 1, service
    monitor = selecting[0]
    # The job label is the service's name, as the dashboard and alerts expect.
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert pod_labels["app.kubernetes.io/name"] == service
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    main = container(service)
    (port,) = [p for p in main["ports"] if p["name"] == endpoint["port"]]
    expected = (
        int(env_of(main)["TRIBUTARY_GATEWAY_METRICS_PORT"]["value"])
        if service == "gateway"
        else http_port(main)
    )
    assert port["containerPort"] == expected
    assert endpoint["path"].rstrip("/") == "/metrics"

"""deploy/k8s: secrets come from Secrets mounted as files and every reference to them
resolves; nothing secret sits in the ConfigMap; each pod's NetworkPolicies let it reach
exactly what it needs."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest

from tests.unit.test_deploy_k8s import APP_SERVICES, container, of_kind
from tests.unit.test_deploy_settings import (
    K8S_DIR,
    WORKERS,
    Doc,
    configmap_data,
    k8s_manifest_files,
    load_yaml_docs,
    settings_errors,
)
from tributary_devtools.config_doc.fields import settings_of
from tributary_devtools.config_doc.sources import settings_classes
from tributary_shared.runtime.settings import KafkaSettings, RedisSettings, load_settings

TOPICS_JOB = "tributary-topics"
PODS = (*APP_SERVICES, TOPICS_JOB)
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD")


# --- the pods ---------------------------------------------------------------------------


def workload(name: str) -> Doc:
    found = {**of_kind("Deployment"), **of_kind("Job")}
    return found[name]


def pod_of(name: str) -> Doc:
    spec = workload(name)["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def pod_labels(name: str) -> dict[str, str]:
    labels = workload(name)["spec"]["template"]["metadata"]["labels"]
    assert isinstance(labels, dict)
    return labels


def main_container(name: str) -> Doc:
    (main,) = pod_of(name)["containers"]
    assert isinstance(main, dict)
    return main


# --- secrets -------------------------------------------------------------------------------


@cache
def example_secrets() -> dict[str, dict[str, str]]:
    """Secret name -> its keys and placeholder values, from deploy/k8s/examples."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted((K8S_DIR / "examples").glob("*.yaml")):
        for doc in load_yaml_docs(path):
            if doc["kind"] == "Secret":
                assert "data" not in doc, f"{path.name}: stringData only, nothing encoded"
                found[doc["metadata"]["name"]] = doc["stringData"]
    return found


def secret_volume_files(pod: Doc) -> dict[str, dict[str, tuple[str, str]]]:
    """volume name -> {file path in the volume: (Secret, key)} for Secret-backed volumes."""
    volumes: dict[str, dict[str, tuple[str, str]]] = {}
    for volume in pod.get("volumes", []):
        sources = []
        if "secret" in volume:
            sources.append({"secret": {"name": volume["secret"]["secretName"], **volume["secret"]}})
        sources += volume.get("projected", {}).get("sources", [])
        files: dict[str, tuple[str, str]] = {}
        for source in sources:
            secret = source.get("secret")
            if secret is None:
                continue
            assert "items" in secret, "name each key a pod gets, so a typo fails the mount"
            for item in secret["items"]:
                files[item["path"]] = (secret["name"], item["key"])
        if files:
            volumes[volume["name"]] = files
    return volumes


def secret_files(name: str) -> dict[str, tuple[str, str]]:
    """Absolute path in the container -> (Secret, key) of every Secret file it sees."""
    pod, main = pod_of(name), main_container(name)
    volumes = secret_volume_files(pod)
    files: dict[str, tuple[str, str]] = {}
    for mount in main.get("volumeMounts", []):
        for path, ref in volumes.get(mount["name"], {}).items():
            assert mount.get("readOnly") is True, (name, mount["name"])
            files[str(PurePosixPath(mount["mountPath"]) / path)] = ref
    return files


def secret_references() -> Iterator[tuple[str, str, str | None]]:
    """(where, Secret, key or None for all of it) of every reference the manifests make."""
    for name in PODS:
        for path, (secret, key) in secret_files(name).items():
            yield f"{name} file {path}", secret, key
        for item in main_container(name).get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                yield f"{name} env {item['name']}", ref["name"], ref["key"]
        for source in main_container(name).get("envFrom", []):
            if "secretRef" in source:
                yield f"{name} envFrom", source["secretRef"]["name"], None
    for auth in of_kind("TriggerAuthentication").values():
        for ref in auth["spec"].get("secretTargetRef", []):
            yield f"TriggerAuthentication {ref['parameter']}", ref["name"], ref["key"]


def test_no_secret_is_applied_and_every_example_is_a_placeholder() -> None:
    assert not of_kind("Secret"), "Secrets are created out of band"
    for path in k8s_manifest_files():
        if "examples" not in path.parts:
            assert "kind: Secret" not in path.read_text(), path.name
    examples = example_secrets()
    assert {"tributary-kafka", "tributary-redis", "tributary-llm"} <= set(examples)
    for secret, keys in examples.items():
        for key, value in keys.items():
            assert "REPLACE" in value, (secret, key)


def test_every_secret_reference_resolves_to_a_documented_key() -> None:
    examples = example_secrets()
    used: set[tuple[str, str]] = set()
    references = list(secret_references())
    assert len(references) >= 20
    for where, secret, key in references:
        assert secret in examples, f"{where}: no example of Secret {secret}"
        if key is not None:
            assert key in examples[secret], f"{where}: Secret {secret} has no key {key}"
            used.add((secret, key))
    # And no example asks the operator for a key nothing reads.
    documented = {(secret, key) for secret, keys in examples.items() for key in keys}
    assert documented == used


@pytest.mark.parametrize("name", PODS)
def test_secrets_reach_pods_as_files_never_as_variables(name: str) -> None:
    main = main_container(name)
    files = secret_files(name)
    assert not [s for s in main.get("envFrom", []) if "secretRef" in s]
    for item in main.get("env", []):
        var = item["name"]
        assert "secretKeyRef" not in item.get("valueFrom", {}), f"{name}: {var} by variable"
        if var.endswith(("_FILE", "_PATH")) and var.startswith("TRIBUTARY_"):
            assert item["value"] in files, f"{name}: {var} names no mounted Secret file"
        elif SECRET_NAME.search(var):
            pytest.fail(f"{name}: {var} looks secret and is not read from a file")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_only_the_workers_get_the_llm_key(service: str) -> None:
    secrets = {secret for secret, _key in secret_files(service).values()}
    assert {"tributary-kafka", "tributary-redis"} <= secrets
    assert ("tributary-llm" in secrets) == (service in WORKERS)


def secret_setting_names() -> set[str]:
    return {
        name for cls in settings_classes() for s in settings_of(cls) if s.secret for name in s.names
    }


def test_the_configmap_holds_nothing_secret() -> None:
    secret = secret_setting_names()
    assert {
        "TRIBUTARY_REDIS_URL",
        "TRIBUTARY_KAFKA_SASL_PASSWORD",
        "TRIBUTARY_LLM_API_KEY",
    } <= secret
    for name, value in configmap_data().items():
        assert name not in secret, f"{name} is a secret"
        assert name.removesuffix("_FILE") not in secret, f"{name}: a secret's file belongs to a pod"
        assert not SECRET_NAME.search(name), name
        assert not re.search(r"://[^/@\s]+@", value), f"{name} carries credentials"


def materialize(name: str, root: Path) -> dict[str, str]:
    """The pod's environment, with its Secret files written under ``root`` from the
    examples and the variables pointing there."""
    examples = example_secrets()
    moved: dict[str, str] = {}
    for path, (secret, key) in secret_files(name).items():
        local = root / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(examples[secret][key])
        moved[path] = str(local)
    env = dict(configmap_data())
    for item in main_container(name).get("env", []):
        if "value" in item:
            env[item["name"]] = moved.get(item["value"], item["value"])
        elif "configMapKeyRef" in item["valueFrom"]:
            env[item["name"]] = configmap_data()[item["valueFrom"]["configMapKeyRef"]["key"]]
        else:
            env[item["name"]] = f"{name}-0"  # the pod's name (fieldRef)
    return env


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_pod_starts_with_its_configmap_and_its_secret_files(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a pod sees, with the examples in place of the Secrets, is a valid configuration
    for every settings class, and the secrets are read from the files."""
    env = materialize(service, tmp_path)
    assert settings_errors(env, monkeypatch) == []
    kafka = load_settings(KafkaSettings)
    assert kafka.kafka_security_protocol == "SASL_SSL"
    assert kafka.kafka_sasl_password is not None
    assert kafka.kafka_sasl_password.get_secret_value() == "REPLACE-WITH-THE-SASL-PASSWORD"
    assert kafka.kafka_ssl_ca_path is not None
    url = load_settings(RedisSettings).redis_url.get_secret_value()
    assert url == example_secrets()["tributary-redis"]["url"]


# --- network policies ----------------------------------------------------------------------


def policies() -> list[Doc]:
    found = list(of_kind("NetworkPolicy").values())
    assert found
    return found


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for rule in selector.get("matchExpressions", []):
        value = labels.get(rule["key"])
        operator = rule["operator"]
        if operator == "In" and value not in rule["values"]:
            return False
        if operator == "NotIn" and value in rule["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def rules_of(name: str, direction: str) -> list[Doc]:
    key = direction.lower()
    return [
        rule
        for policy in policies()
        if direction in policy["spec"]["policyTypes"]
        and selects(policy["spec"]["podSelector"], pod_labels(name))
        for rule in policy["spec"].get(key, [])
    ]


def peer(item: Doc) -> tuple[str, ...]:
    if "ipBlock" in item:
        return ("ip", item["ipBlock"]["cidr"])
    namespace = item["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    pods = item.get("podSelector", {}).get("matchLabels", {})
    return ("namespace", namespace, *sorted(f"{k}={v}" for k, v in pods.items()))


def egress_allowed(name: str) -> set[tuple[tuple[str, ...], object, str]]:
    """(peer, port, protocol) of everything the pod may send to."""
    allowed = set()
    for rule in rules_of(name, "Egress"):
        assert rule.get("to"), f"{name}: an egress rule without 'to' opens every address"
        assert rule.get("ports"), f"{name}: an egress rule without 'ports' opens every port"
        for item in rule["to"]:
            for port in rule["ports"]:
                allowed.add((peer(item), port["port"], port.get("protocol", "TCP")))
    return allowed


def service_address(host_port: str) -> tuple[str, int]:
    """``name.namespace.svc[...]:port`` -> (namespace, port)."""
    host, _, port = host_port.rpartition(":")
    return host.split(".")[1], int(port)


def kafka_address() -> tuple[str, int]:
    servers = configmap_data()["TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS"].split(",")
    (address,) = {service_address(server.strip()) for server in servers}
    return address


def redis_address() -> tuple[str, int]:
    url = urlsplit(example_secrets()["tributary-redis"]["url"])
    assert url.hostname is not None
    return url.hostname.split(".")[1], url.port or 6379


DNS = {
    (("namespace", "kube-system", "k8s-app=kube-dns"), 53, "UDP"),
    (("namespace", "kube-system", "k8s-app=kube-dns"), 53, "TCP"),
}
HTTPS_OUT = {(("ip", "0.0.0.0/0"), 443, "TCP"), (("ip", "::/0"), 443, "TCP")}


def expected_egress(name: str) -> set[tuple[tuple[str, ...], object, str]]:
    kafka_ns, kafka_port = kafka_address()
    expected: set[tuple[tuple[str, ...], object, str]] = {
        *DNS,
        (("namespace", kafka_ns), kafka_port, "TCP"),
    }
    if name in APP_SERVICES:
        redis_ns, redis_port = redis_address()
        expected.add((("namespace", redis_ns), redis_port, "TCP"))
    if name in WORKERS:
        expected |= HTTPS_OUT
    return expected


def test_everything_is_denied_unless_a_policy_allows_it() -> None:
    (deny,) = [p for p in policies() if p["spec"]["podSelector"] == {}]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny["spec"].get("ingress")
    assert not deny["spec"].get("egress")


@pytest.mark.parametrize("name", PODS)
def test_each_pod_reaches_exactly_what_it_needs(name: str) -> None:
    assert egress_allowed(name) == expected_egress(name)


@pytest.mark.parametrize("service", WORKERS)
def test_workers_reach_public_https_but_no_private_or_metadata_address(service: str) -> None:
    blocks = [
        item["ipBlock"]
        for rule in rules_of(service, "Egress")
        for item in rule["to"]
        if "ipBlock" in item
    ]
    closed = {ipaddress.ip_network(cidr) for block in blocks for cidr in block.get("except", [])}
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
        assert ipaddress.ip_network(private) in closed, private
    assert ipaddress.ip_network("fc00::/7") in closed


def test_the_gateway_takes_its_api_port_from_anywhere_and_its_metrics_port_from_monitoring() -> (
    None
):
    rules = rules_of("gateway", "Ingress")
    open_to_all = [rule for rule in rules if "from" not in rule]
    (public,) = open_to_all
    assert [p["port"] for p in public["ports"]] == ["http"]
    scraped = [rule for rule in rules if "from" in rule]
    (monitoring,) = scraped
    assert [peer(item) for item in monitoring["from"]] == [("namespace", "monitoring")]
    assert [p["port"] for p in monitoring["ports"]] == ["metrics"]
    names = {p["name"]: p["containerPort"] for p in container("gateway")["ports"]}
    assert set(names) == {"http", "metrics"}
    assert names["http"] != names["metrics"]


def test_the_gateway_is_scraped_on_its_metrics_port_which_it_listens_on() -> None:
    gateway = container("gateway")
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["TRIBUTARY_GATEWAY_METRICS_PORT"] == str(ports["metrics"])
    assert env["TRIBUTARY_HTTP_PORT"] == str(ports["http"])
    annotations = workload("gateway")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("service", WORKERS)
def test_workers_take_only_the_monitoring_namespace_on_their_metrics_port(service: str) -> None:
    rules = rules_of(service, "Ingress")
    assert rules
    for rule in rules:
        assert [peer(item) for item in rule["from"]] == [("namespace", "monitoring")]
        assert [p["port"] for p in rule["ports"]] == ["http"]
    served = {p["name"] for p in container(service)["ports"]}
    assert "http" in served


def test_the_topics_job_takes_no_connections() -> None:
    assert rules_of(TOPICS_JOB, "Ingress") == []


def test_every_policy_selects_some_pod() -> None:
    for policy in policies():
        selector = policy["spec"]["podSelector"]
        assert any(selects(selector, pod_labels(name)) for name in PODS), policy["metadata"]


def test_the_policies_cover_every_pod_the_manifests_run() -> None:
    running = set(of_kind("Deployment")) | set(of_kind("Job"))
    assert running == set(PODS)

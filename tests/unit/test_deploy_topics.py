"""Topic creation for deployments: the shared script (run against a stand-in
kafka-topics.sh), the Kubernetes Job that runs it, and the Strimzi alternative."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_deploy_settings import (
    K8S_DIR,
    TOPICS_SCRIPT,
    Doc,
    configmap_data,
    k8s_docs,
    load_yaml_docs,
)
from tributary_shared.core.topics import ALL_TOPICS

ENSURE_LINE = re.compile(r"^ensure_topic\s+(?P<name>\S+)\s+(?P<partitions>\d+)\s*$", re.MULTILINE)
WANTED = {topic.name: topic.partitions for topic in ALL_TOPICS}
BASH = shutil.which("bash")


def script_topics() -> dict[str, int]:
    """name -> partitions of every ``ensure_topic`` call in the script."""
    calls = ENSURE_LINE.findall(TOPICS_SCRIPT.read_text())
    topics = {name: int(partitions) for name, partitions in calls}
    assert len(topics) == len(calls), "a topic is ensured twice"
    return topics


def test_script_ensures_exactly_the_topics_of_all_topics() -> None:
    assert script_topics() == WANTED
    assert len(WANTED) == len(ALL_TOPICS)


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_script_is_valid_bash() -> None:
    assert BASH is not None
    subprocess.run([BASH, "-n", str(TOPICS_SCRIPT)], check=True)


STUB = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$CALLS"
# Keep what --command-config pointed at (the script removes it when it ends), and its mode.
args=("$@")
for i in "${!args[@]}"; do
  if [ "${args[$i]}" = "--command-config" ]; then
    config="${args[$((i + 1))]}"
    cp "$config" "$CALLS.config"
    stat -c %a "$config" > "$CALLS.mode"
  fi
done
case " $* " in
  *" --describe "*) cat "$DESCRIBE" ;;
  *" --create "*) [ -z "${FAIL_CREATE:-}" ] || exit 3 ;;
esac
"""

# kafka-topics.sh --describe output: summary lines plus one line per partition.
EXISTING = """\
Topic: tributary.workflow.requests\tTopicId: a\tPartitionCount: 12\tReplicationFactor: 3\tConfigs:
\tTopic: tributary.workflow.requests\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1
Topic: tributary.steps\tTopicId: b\tPartitionCount: 12\tReplicationFactor: 3\tConfigs:
\tTopic: tributary.steps\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1
Topic: tributary.deadletter\tTopicId: c\tPartitionCount: 5\tReplicationFactor: 3\tConfigs:
Topic: someone.else\tTopicId: d\tPartitionCount: 1\tReplicationFactor: 3\tConfigs:
"""


def run_script(tmp_path: Path, **extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    assert BASH is not None
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(STUB)
    stub.chmod(0o755)
    describe = tmp_path / "describe.txt"
    describe.write_text(EXISTING)
    calls = tmp_path / "calls.txt"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS": "broker:9092",
        "TOPIC_REPLICATION_FACTOR": "3",
        "KAFKA_TOPICS": str(stub),
        "CALLS": str(calls),
        "DESCRIBE": str(describe),
        **extra,
    }
    result = subprocess.run(
        [BASH, str(TOPICS_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return result, lines


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_script_creates_missing_topics_and_grows_small_ones(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path)
    assert result.returncode == 0, result.stderr
    bs = "--bootstrap-server broker:9092"
    assert calls == [
        f"{bs} --describe --exclude-internal",
        f"{bs} --alter --topic tributary.steps --partitions 24",
        f"{bs} --create --if-not-exists --topic tributary.step.results"
        " --partitions 12 --replication-factor 3",
        f"{bs} --create --if-not-exists --topic tributary.workflow.events"
        " --partitions 12 --replication-factor 3",
        f"{bs} --create --if-not-exists --topic tributary.workflow.calls"
        " --partitions 12 --replication-factor 3",
    ]
    # More partitions than specified cannot be undone; it is reported, not fatal.
    assert "tributary.deadletter has 5 partitions" in result.stderr


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_script_fails_when_kafka_refuses(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, FAIL_CREATE="1")
    assert result.returncode != 0
    assert any("--create" in call for call in calls)


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_script_requires_the_bootstrap_servers(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS="")
    assert result.returncode != 0
    assert "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS" in result.stderr
    assert calls == []


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_script_connects_as_the_services_do_with_the_password_from_a_file(
    tmp_path: Path,
) -> None:
    password = tmp_path / "password"
    password.write_text('pa"ss\\word\n')  # a quote and a backslash, as JAAS must carry them
    result, calls = run_script(
        tmp_path,
        TRIBUTARY_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        TRIBUTARY_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        TRIBUTARY_KAFKA_SASL_USERNAME="tributary",
        TRIBUTARY_KAFKA_SASL_PASSWORD_FILE=str(password),
        TRIBUTARY_KAFKA_SSL_CA_PATH="/secrets/kafka/ca.crt",
        TMPDIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert calls
    assert all(" --command-config " in call for call in calls)
    config = (tmp_path / "calls.txt.config").read_text().splitlines()
    assert config == [
        "security.protocol=SASL_SSL",
        "ssl.truststore.type=PEM",
        "ssl.truststore.location=/secrets/kafka/ca.crt",
        "sasl.mechanism=SCRAM-SHA-512",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="tributary" password="pa\\\\"ss\\\\\\\\word";',
    ]
    assert (tmp_path / "calls.txt.mode").read_text().strip() == "600"
    assert not list(tmp_path.glob("tributary-kafka-client.*")), "removed when done"
    assert "pa" + '"ss' not in result.stdout + result.stderr


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_script_refuses_a_password_given_both_ways(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("one")
    result, calls = run_script(
        tmp_path,
        TRIBUTARY_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        TRIBUTARY_KAFKA_SASL_MECHANISM="PLAIN",
        TRIBUTARY_KAFKA_SASL_USERNAME="tributary",
        TRIBUTARY_KAFKA_SASL_PASSWORD="two",
        TRIBUTARY_KAFKA_SASL_PASSWORD_FILE=str(password),
        TMPDIR=str(tmp_path),
    )
    assert result.returncode != 0
    assert "TRIBUTARY_KAFKA_SASL_PASSWORD and TRIBUTARY_KAFKA_SASL_PASSWORD_FILE" in result.stderr
    assert calls == []


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_plaintext_needs_no_command_config(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any("--command-config" in call for call in calls)


def topics_job() -> Doc:
    jobs = [doc for _, doc in k8s_docs() if doc["kind"] == "Job"]
    assert len(jobs) == 1
    return jobs[0]


def test_job_mounts_the_generated_script_and_reads_the_configmap() -> None:
    kustomization = load_yaml_docs(K8S_DIR / "kustomization.yaml")[0]
    (generator,) = [
        gen
        for gen in kustomization["configMapGenerator"]
        if "topics/ensure-topics.sh" in gen["files"]
    ]
    assert (K8S_DIR / "topics/ensure-topics.sh").resolve() == TOPICS_SCRIPT
    pod = topics_job()["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("OnFailure", "Never")
    (container,) = pod["containers"]
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", container["image"])
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    script_path = next(arg for arg in container["command"] if arg.endswith(".sh"))
    volume = volumes[mounts[str(Path(script_path).parent)]]
    assert volume["configMap"]["name"] == generator["name"]
    assert Path(script_path).name == "ensure-topics.sh"
    env = {item["name"]: item for item in container["env"]}
    # The script reaches Kafka as the services do (the ConfigMap's address and protocol;
    # the user, password and CA as files: test_deploy_k8s_security checks they resolve).
    for name in (
        "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS",
        "TRIBUTARY_KAFKA_SECURITY_PROTOCOL",
        "TRIBUTARY_KAFKA_SASL_MECHANISM",
    ):
        ref = env[name]["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == "tributary-config"
        assert ref["key"] == name
        assert ref["key"] in configmap_data()
    for name in ("TRIBUTARY_KAFKA_SASL_USERNAME_FILE", "TRIBUTARY_KAFKA_SASL_PASSWORD_FILE"):
        assert env[name]["value"].startswith("/var/run/secrets/")
    assert "TRIBUTARY_KAFKA_SSL_CA_PATH" in env
    assert int(env["TOPIC_REPLICATION_FACTOR"]["value"]) >= 1
    # kafka-run-class.sh writes its log directory; the root filesystem is read-only.
    assert env["LOG_DIR"]["value"].startswith("/tmp/")
    assert "/tmp" in mounts


def test_strimzi_topics_match_all_topics() -> None:
    path = K8S_DIR / "strimzi" / "kafkatopics.yaml"
    docs = load_yaml_docs(path)
    found = {}
    for doc in docs:
        assert doc["apiVersion"] in ("kafka.strimzi.io/v1", "kafka.strimzi.io/v1beta2")
        assert doc["kind"] == "KafkaTopic"
        assert doc["metadata"]["labels"]["strimzi.io/cluster"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
        spec = doc["spec"]
        assert spec["replicas"] >= 1
        found[spec["topicName"]] = spec["partitions"]
    assert found == WANTED
    assert len(docs) == len(WANTED)
    strimzi = load_yaml_docs(K8S_DIR / "strimzi" / "kustomization.yaml")[0]
    assert strimzi["resources"] == ["kafkatopics.yaml"]

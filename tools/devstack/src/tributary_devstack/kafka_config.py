"""Pure rendering of the broker's files and command lines (no I/O here).

The broker runs in KRaft mode as a single combined broker+controller with a
static voter set, which is the smallest configuration Kafka 4.x accepts.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path

from tributary_devstack.config import StackConfig

# Small heap: a single-node dev broker with a handful of topics needs little,
# and several stacks (developer + test run) may share one machine.
KAFKA_JVM_HEAP = ("-Xms256m", "-Xmx768m")
KAFKA_MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def server_properties(config: StackConfig) -> dict[str, str]:
    """Broker settings as an ordered mapping (rendered by ``render_properties``).

    The broker has one listener for clients and itself, named after its protocol
    (``config.kafka_security_protocol``), and the KRaft controller's, which stays
    plaintext on the loopback address.
    """
    kafka = config.kafka_port
    controller = config.kafka_controller_port
    listener = config.kafka_security_protocol
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"{listener}://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"{listener}://127.0.0.1:{kafka}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": listener,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{listener}:{listener}",
        **_security_properties(config),
        "log.dirs": str(config.kafka_data_dir),
        # One node: every internal topic must be satisfiable with one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Fewer internal partitions than the defaults (50): the first consumer
        # group on a fresh broker waits for __consumer_offsets to be created.
        "offsets.topic.num.partitions": "12",
        "transaction.state.log.num.partitions": "6",
        # Kafka 4.x waits 3 s before the first rebalance of a new group; that
        # delay would be paid by every consumer start in tests.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true" if config.kafka_auto_create_topics else "false",
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "log.retention.hours": "24",
    }


def _security_properties(config: StackConfig) -> dict[str, str]:
    props: dict[str, str] = {}
    listener = f"listener.name.{config.kafka_security_protocol.lower()}"
    if config.infra_password is not None:
        user = config.infra_username
        password = config.infra_password.get_secret_value()
        # The broker logs in to itself with PLAIN; SCRAM users are kept in the cluster
        # metadata, written when the storage is formatted (storage_format_command).
        props["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
        props["sasl.mechanism.inter.broker.protocol"] = "PLAIN"
        props[f"{listener}.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{user}" password="{password}" user_{user}="{password}";'
        )
        for mechanism in _SCRAM:
            props[f"{listener}.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{user}" password="{password}";'
            )
    if config.tls_ca_path is not None:
        props["ssl.keystore.type"] = "PEM"
        props["ssl.keystore.location"] = str(config.kafka_keystore_path)
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = str(config.tls_ca_path)
        props["ssl.client.auth"] = "none"
    return props


def scram_credentials(config: StackConfig) -> list[str]:
    """``--add-scram`` arguments of the storage format: the SCRAM users, if any."""
    if config.infra_password is None:
        return []
    user, password = config.infra_username, config.infra_password.get_secret_value()
    arguments = []
    for mechanism in _SCRAM:
        arguments += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
    return arguments


def render_properties(props: Mapping[str, str], header: str = "") -> str:
    """Render a Java ``.properties`` file. Values here never need escaping (the
    configuration admits no backslash in the one secret they may hold)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines.extend(f"{key}={value}" for key, value in props.items())
    return "\n".join(lines) + "\n"


def render_server_properties(config: StackConfig) -> str:
    return render_properties(
        server_properties(config),
        header="Generated by tributary_devstack; rewritten on every start.",
    )


def render_log4j2_properties() -> str:
    """Log4j2 config that writes to stdout, which the launcher sends to the log file.

    A ``.properties`` config is used because Kafka's own log4j2.yaml would need
    the Jackson YAML binding on the classpath for Log4j.
    """
    return (
        "# Generated by tributary_devstack.\n"
        "status = warn\n"
        "name = TributaryDevstackKafka\n"
        "appender.stdout.type = Console\n"
        "appender.stdout.name = STDOUT\n"
        "appender.stdout.target = SYSTEM_OUT\n"
        "appender.stdout.layout.type = PatternLayout\n"
        "appender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.stdout.ref = STDOUT\n"
        # Per-request and state-change chatter drowns the useful lines.
        "logger.request.name = kafka.request.logger\n"
        "logger.request.level = WARN\n"
        "logger.statechange.name = state.change.logger\n"
        "logger.statechange.level = WARN\n"
        "logger.controller.name = kafka.controller\n"
        "logger.controller.level = INFO\n"
    )


def new_cluster_id(random_bytes: bytes | None = None) -> str:
    """A Kafka cluster id, generated like ``Uuid.randomUuid().toString()``.

    Doing it in Python saves one JVM start (``StorageTool random-uuid``). Kafka
    rejects ids whose base64 form starts with '-' (they look like CLI flags),
    so those are redrawn.
    """
    while True:
        raw = random_bytes if random_bytes is not None else os.urandom(16)
        if len(raw) != 16:
            raise ValueError("a Kafka Uuid is 16 bytes")
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if not text.startswith("-") and any(raw):
            return text
        if random_bytes is not None:
            raise ValueError("these bytes do not make a valid Kafka cluster id")


def _java_classpath(libs_dir: Path) -> str:
    # The JVM expands "dir/*" itself, so no shell is involved.
    return f"{libs_dir}/*"


def log4j_jvm_options(config: StackConfig) -> list[str]:
    return [
        f"-Dlog4j2.configurationFile={config.kafka_dir / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={config.logs_dir}",
    ]


def storage_format_command(config: StackConfig, cluster_id: str) -> list[str]:
    """``kafka-storage.sh format`` without the script. ``-g`` keeps it idempotent."""
    return [
        config.java,
        "-Xmx256m",
        *log4j_jvm_options(config),
        "-cp",
        _java_classpath(config.kafka_libs_dir),
        STORAGE_TOOL_CLASS,
        "format",
        "-t",
        cluster_id,
        "-c",
        str(config.kafka_dir / "server.properties"),
        "-g",
        *scram_credentials(config),
    ]


def broker_command(config: StackConfig) -> list[str]:
    """``kafka-server-start.sh`` without the script."""
    return [
        config.java,
        *KAFKA_JVM_HEAP,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        *log4j_jvm_options(config),
        "-cp",
        _java_classpath(config.kafka_libs_dir),
        KAFKA_MAIN_CLASS,
        str(config.kafka_dir / "server.properties"),
    ]


def maven_fetch_command(config: StackConfig, output_dir: Path) -> list[str]:
    """Resolve the broker's runtime jars from Maven Central into ``output_dir``."""
    return [
        config.mvn,
        "-B",
        "-q",
        "-f",
        str(config.kafka_pom),
        f"-Dkafka.version={config.kafka_version}",
        f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={output_dir}",
    ]

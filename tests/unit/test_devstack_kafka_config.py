"""Rendering of the broker's properties, Log4j2 config and command lines."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tributary_devstack.config import StackConfig
from tributary_devstack.kafka_config import (
    MAVEN_DEPENDENCY_PLUGIN,
    broker_command,
    maven_fetch_command,
    new_cluster_id,
    render_log4j2_properties,
    render_properties,
    render_server_properties,
    server_properties,
    storage_format_command,
)


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    return StackConfig(
        run_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        kafka_port=29092,
        kafka_controller_port=29093,
        kafka_version="4.1.1",
    )


def parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def test_server_properties_describe_a_single_combined_kraft_node(config: StackConfig) -> None:
    props = parse(render_server_properties(config))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(config.kafka_data_dir)


def test_internal_topics_fit_one_broker_and_groups_start_without_delay(
    config: StackConfig,
) -> None:
    props = server_properties(config)
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_topic_auto_creation_follows_the_config(tmp_path: Path) -> None:
    assert server_properties(StackConfig(run_dir=tmp_path))["auto.create.topics.enable"] == "false"
    on = StackConfig(run_dir=tmp_path, kafka_auto_create_topics=True)
    assert server_properties(on)["auto.create.topics.enable"] == "true"


def test_render_properties_writes_a_header_and_one_line_per_key() -> None:
    text = render_properties({"a": "1", "b.c": "x y"}, header="line one\nline two")
    assert text == "# line one\n# line two\na=1\nb.c=x y\n"


def test_log4j2_config_logs_to_stdout_at_info() -> None:
    props = parse(render_log4j2_properties())
    assert props["appender.stdout.type"] == "Console"
    assert props["appender.stdout.target"] == "SYSTEM_OUT"
    assert props["rootLogger.level"] == "INFO"
    assert props["rootLogger.appenderRef.stdout.ref"] == "STDOUT"


def test_cluster_id_is_a_22_character_url_safe_uuid() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")
    assert base64.urlsafe_b64decode(cluster_id + "==") != bytes(16)
    assert new_cluster_id() != cluster_id


def test_cluster_id_from_given_bytes_is_deterministic() -> None:
    raw = bytes(range(16))
    assert new_cluster_id(raw) == base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("raw", [bytes(16), b"\xf8" + bytes(15), b"short"])
def test_cluster_ids_kafka_rejects_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"Uuid|cluster id"):
        new_cluster_id(raw)


def test_broker_command_runs_kafka_main_with_a_small_heap(config: StackConfig) -> None:
    command = broker_command(config)
    assert command[0] == "java"
    assert "-Xms256m" in command
    assert "-Xmx768m" in command
    assert command[-2:] == ["kafka.Kafka", str(config.kafka_dir / "server.properties")]
    classpath = command[command.index("-cp") + 1]
    assert classpath == f"{config.kafka_libs_dir}/*"
    assert f"-Dlog4j2.configurationFile={config.kafka_dir / 'log4j2.properties'}" in command


def test_storage_format_is_idempotent_and_uses_the_cluster_id(config: StackConfig) -> None:
    command = storage_format_command(config, "abc")
    tail = command[command.index("kafka.tools.StorageTool") :]
    assert tail == [
        "kafka.tools.StorageTool",
        "format",
        "-t",
        "abc",
        "-c",
        str(config.kafka_dir / "server.properties"),
        "-g",
    ]


def test_maven_fetch_copies_runtime_dependencies_of_the_pinned_version(
    config: StackConfig, tmp_path: Path
) -> None:
    command = maven_fetch_command(config, tmp_path / "libs")
    assert command[:3] == ["mvn", "-B", "-q"]
    assert command[command.index("-f") + 1] == str(config.kafka_pom)
    assert "-Dkafka.version=4.1.1" in command
    assert f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies" in command
    assert MAVEN_DEPENDENCY_PLUGIN.endswith(":3.8.1")
    assert "-DincludeScope=runtime" in command
    assert f"-DoutputDirectory={tmp_path / 'libs'}" in command


def test_the_pom_pins_kafka_and_the_log4j_binding(config: StackConfig) -> None:
    pom = config.kafka_pom.read_text()
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom
    assert "<packaging>pom</packaging>" in pom

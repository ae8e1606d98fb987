"""Pid bookkeeping: records survive a round trip and stale ones are ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tributary_devstack.pidfiles import (
    PidRecord,
    list_records,
    meta_path,
    pid_path,
    read_record,
    remove_record,
    replica_index,
    replica_names,
    validate_name,
    write_record,
)


def record(name: str = "agent-runner-1", pid: int = 4242, kind: str = "service") -> PidRecord:
    return PidRecord(
        name=name,
        pid=pid,
        kind=kind,
        log_path=Path("/tmp/logs") / f"{name}.log",
        port=8202,
        health_url="http://127.0.0.1:8202/health",
        module="tributary_agent_runner",
        create_time=1700000000.25,
        started_at=1700000000.5,
        command=("python", "-m", "tributary_agent_runner"),
    )


def test_json_round_trip_keeps_every_field() -> None:
    original = record()
    assert PidRecord.from_json(original.to_json()) == original


def test_write_creates_a_plain_pid_file_and_a_metadata_file(tmp_path: Path) -> None:
    write_record(tmp_path / "pids", record())
    assert pid_path(tmp_path / "pids", "agent-runner-1").read_text() == "4242\n"
    assert read_record(tmp_path / "pids", "agent-runner-1") == record()
    assert not list((tmp_path / "pids").glob(".*.tmp"))


def test_missing_or_corrupt_records_read_as_none(tmp_path: Path) -> None:
    assert read_record(tmp_path, "kafka") is None
    meta_path(tmp_path, "kafka").write_text("{not json")
    assert read_record(tmp_path, "kafka") is None
    meta_path(tmp_path, "kafka").write_text('{"name": "kafka"}')
    assert read_record(tmp_path, "kafka") is None


def test_a_record_written_by_an_older_version_still_reads(tmp_path: Path) -> None:
    old = json.loads(record().to_json())
    del old["create_time"]
    old["start_ticks"] = 123456  # the field older versions wrote instead
    meta_path(tmp_path, "agent-runner-1").write_text(json.dumps(old))
    read = read_record(tmp_path, "agent-runner-1")
    assert read is not None
    assert read.pid == 4242
    assert read.create_time is None  # then the process is known by its pid alone


def test_list_and_remove(tmp_path: Path) -> None:
    write_record(tmp_path, record("redis", 1, "redis"))
    write_record(tmp_path, record("kafka", 2, "kafka"))
    assert [r.name for r in list_records(tmp_path)] == ["kafka", "redis"]
    remove_record(tmp_path, "kafka")
    remove_record(tmp_path, "kafka")  # idempotent
    assert [r.name for r in list_records(tmp_path)] == ["redis"]
    assert not pid_path(tmp_path, "kafka").exists()
    assert list_records(tmp_path / "absent") == []


def test_replica_names_select_one_service_only() -> None:
    records = [
        record("agent-runner-0"),
        record("agent-runner-12"),
        record("agent-runner-x"),
        record("planner-0"),
        record("agent-runner-3", kind="llm"),
    ]
    assert replica_names(records, "agent-runner") == ["agent-runner-0", "agent-runner-12"]
    assert replica_index("agent-runner-12") == 12
    with pytest.raises(ValueError, match="replica"):
        replica_index("kafka")


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "Kafka", "-x"])
def test_names_that_are_not_safe_file_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid component name"):
        validate_name(name)

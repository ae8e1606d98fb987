"""Fetching the broker's jars, formatting its storage and launching it."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tributary_devstack import procs
from tributary_devstack.config import StackConfig
from tributary_devstack.kafka_config import (
    broker_command,
    maven_fetch_command,
    new_cluster_id,
    render_log4j2_properties,
    render_server_properties,
    storage_format_command,
)
from tributary_devstack.readiness import ComponentStartError

_COMPLETE_MARKER = ".complete"
_FETCH_TIMEOUT_S = 900.0
_FORMAT_TIMEOUT_S = 120.0


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock, so concurrent runs do not fetch or format twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kafka_log_path(config: StackConfig) -> Path:
    return config.logs_dir / "kafka.log"


def libs_cached(config: StackConfig) -> bool:
    return (config.kafka_home / _COMPLETE_MARKER).is_file()


def ensure_libs(config: StackConfig, say: Callable[[str], None]) -> Path:
    """The cached jar directory of ``config.kafka_version``, fetched on first use.

    Jars land in a scratch directory that is renamed into place only when Maven
    succeeded, so an interrupted fetch is never mistaken for a complete one.
    """
    with file_lock(config.cache_dir / f".kafka-{config.kafka_version}.lock"):
        if libs_cached(config):
            return config.kafka_libs_dir
        if shutil.which(config.mvn) is None:
            raise ComponentStartError(
                "kafka", f"'{config.mvn}' not found; run scripts/install-system-deps.sh", None
            )
        say(f"Fetching Kafka {config.kafka_version} jars from Maven Central (first run only)...")
        scratch = config.cache_dir / f".kafka-{config.kafka_version}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        log_path = config.cache_dir / f"kafka-{config.kafka_version}-fetch.log"
        started = time.monotonic()
        code = procs.run_checked(
            maven_fetch_command(config, scratch / "libs"),
            log_path=log_path,
            env=os.environ,
            cwd=config.repo_root,
            timeout=_FETCH_TIMEOUT_S,
        )
        if code != 0 or not any((scratch / "libs").glob("kafka_2.13-*.jar")):
            raise ComponentStartError(
                "kafka", f"fetching the jars with Maven failed (exit code {code})", log_path
            )
        shutil.rmtree(config.kafka_home, ignore_errors=True)
        scratch.rename(config.kafka_home)
        (config.kafka_home / _COMPLETE_MARKER).write_text(
            f"kafka {config.kafka_version}\n", encoding="utf-8"
        )
        say(f"Fetched Kafka jars in {time.monotonic() - started:.0f}s into {config.kafka_libs_dir}")
        return config.kafka_libs_dir


def write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner can read: it holds a password or a private key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    path.chmod(0o600)


def write_config_files(config: StackConfig) -> None:
    """(Re)write server.properties, the TLS keystore and the Log4j2 config under the run dir."""
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    write_private(config.kafka_dir / "server.properties", render_server_properties(config).encode())
    if config.tls_cert_path is not None and config.tls_key_path is not None:
        write_private(
            config.kafka_keystore_path,
            config.tls_key_path.read_bytes() + config.tls_cert_path.read_bytes(),
        )
    (config.kafka_dir / "log4j2.properties").write_text(
        render_log4j2_properties(), encoding="utf-8"
    )


def is_formatted(config: StackConfig) -> bool:
    return (config.kafka_data_dir / "meta.properties").is_file()


def format_storage(config: StackConfig) -> None:
    """Format the KRaft log directory once; later starts reuse its data."""
    with file_lock(config.kafka_dir / ".format.lock"):
        if is_formatted(config):
            return
        config.kafka_data_dir.mkdir(parents=True, exist_ok=True)
        log_path = kafka_log_path(config)
        code = procs.run_checked(
            storage_format_command(config, new_cluster_id()),
            log_path=log_path,
            env=os.environ,
            cwd=config.kafka_dir,
            timeout=_FORMAT_TIMEOUT_S,
            secrets=[config.infra_password.get_secret_value()] if config.infra_password else [],
        )
        if code != 0 or not is_formatted(config):
            raise ComponentStartError(
                "kafka", f"formatting the storage failed (exit code {code})", log_path
            )


def spawn_broker(config: StackConfig) -> tuple[psutil.Process, list[str]]:
    """Write the config, format if needed and start ``kafka.Kafka`` in the background."""
    if shutil.which(config.java) is None:
        raise ComponentStartError(
            "kafka", f"'{config.java}' not found; install a Java 17+ runtime", None
        )
    write_config_files(config)
    format_storage(config)
    command = broker_command(config)
    process = procs.spawn(
        command, log_path=kafka_log_path(config), env=os.environ, cwd=config.kafka_dir
    )
    return process, command

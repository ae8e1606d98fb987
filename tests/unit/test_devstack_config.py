"""StackConfig: defaults, environment overrides and derived locations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tributary_devstack.config import DEFAULT_KAFKA_VERSION, StackConfig, find_repo_root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRIBUTARY_") or name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
            monkeypatch.delenv(name)


def test_defaults_match_the_documented_ports_and_dirs() -> None:
    config = StackConfig()
    assert config.repo_root == REPO
    assert config.run_dir == REPO / ".run"
    assert config.cache_dir == REPO / ".cache"
    assert (config.kafka_port, config.kafka_controller_port, config.redis_port) == (
        9092,
        9093,
        6379,
    )
    assert (config.gateway_port, config.planner_port) == (8000, 8101)
    assert (config.agent_runner_port, config.synthesizer_port) == (8102, 8103)
    assert config.scripted_llm_port == 8199
    assert config.kafka_version == DEFAULT_KAFKA_VERSION
    assert config.kafka_version.startswith("4.1.")
    assert config.llm_base_url is None


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIBUTARY_KAFKA_PORT", "29092")
    monkeypatch.setenv("TRIBUTARY_REDIS_PORT", "26379")
    monkeypatch.setenv("TRIBUTARY_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("TRIBUTARY_KAFKA_VERSION", "4.1.0")
    config = StackConfig()
    assert config.kafka_port == 29092
    assert config.redis_port == 26379
    assert config.run_dir == tmp_path / "run"
    assert config.kafka_home == config.cache_dir / "kafka-4.1.0"


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_KAFKA_PORT", "29092")
    assert StackConfig(kafka_port=19092).kafka_port == 19092


def test_relative_dirs_resolve_against_the_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    config = StackConfig(run_dir=Path("some/run"))
    assert config.run_dir == REPO / "some" / "run"


def test_derived_locations_live_under_the_run_and_cache_dirs(tmp_path: Path) -> None:
    config = StackConfig(run_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert config.logs_dir == tmp_path / "logs"
    assert config.pids_dir == tmp_path / "pids"
    assert config.kafka_data_dir == tmp_path / "kafka" / "data"
    assert config.redis_dir == tmp_path / "redis"
    assert config.kafka_libs_dir == tmp_path / "cache" / f"kafka-{config.kafka_version}" / "libs"
    assert config.kafka_pom.is_file()


def test_urls_point_at_loopback() -> None:
    config = StackConfig(kafka_port=1, redis_port=2, gateway_port=3, scripted_llm_port=4)
    assert config.kafka_bootstrap == "127.0.0.1:1"
    assert config.redis_url == "redis://127.0.0.1:2/0"
    assert config.gateway_url == "http://127.0.0.1:3"
    assert config.scripted_llm_url == "http://127.0.0.1:4/v1"


def test_tributary_llm_base_url_wins_over_openai_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai.example/v1")
    assert StackConfig().llm_base_url == "http://openai.example/v1"
    monkeypatch.setenv("TRIBUTARY_LLM_BASE_URL", "http://tributary.example/v1")
    assert StackConfig().llm_base_url == "http://tributary.example/v1"


def test_blank_llm_base_url_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_LLM_BASE_URL", "  ")
    assert StackConfig().llm_base_url is None


def test_invalid_port_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_REDIS_PORT", "70000")
    with pytest.raises(ValueError, match="redis_port"):
        StackConfig()


def test_find_repo_root_falls_back_to_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_repo_root(tmp_path / "elsewhere" / "file.py") == tmp_path
    assert find_repo_root(REPO / "tools" / "devstack" / "src") == REPO

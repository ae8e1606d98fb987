"""Every setting can be given as a file (``X_FILE``), as Kubernetes Secrets are mounted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tributary_devtools.config_doc.sources import settings_classes
from tributary_shared.runtime.settings import (
    ConfigurationError,
    ConsumerSettings,
    KafkaSettings,
    LLMSettings,
    TributarySettings,
    load_settings,
)

SECRET = "hunter2-very-secret"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("TRIBUTARY_", "OPENAI_")):
            monkeypatch.delenv(name)


def secret_file(tmp_path: Path, content: str, name: str = "value") -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def test_a_file_gives_its_variable_the_value_without_the_trailing_line_break(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRIBUTARY_LLM_API_KEY_FILE", str(secret_file(tmp_path, SECRET + "\n")))
    settings = load_settings(LLMSettings)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


def test_any_variable_can_come_from_a_file_and_is_parsed_as_the_variable_would_be(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRIBUTARY_MAX_IN_FLIGHT_FILE", str(secret_file(tmp_path, "7\r\n")))
    assert load_settings(ConsumerSettings).max_in_flight == 7
    servers = secret_file(tmp_path, "kafka-0:9093,kafka-1:9093", "servers")
    monkeypatch.setenv("TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS_FILE", str(servers))
    assert load_settings(KafkaSettings).kafka_bootstrap_servers == "kafka-0:9093,kafka-1:9093"


def test_an_alias_read_from_a_file_keeps_its_rank_among_the_aliases(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TRIBUTARY_LLM_API_KEY beats OPENAI_API_KEY, whichever way each is given."""
    monkeypatch.setenv("OPENAI_API_KEY", "from-the-shell")
    monkeypatch.setenv("TRIBUTARY_LLM_API_KEY_FILE", str(secret_file(tmp_path, SECRET)))
    key = load_settings(LLMSettings).api_key
    assert key is not None
    assert key.get_secret_value() == SECRET
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("TRIBUTARY_LLM_API_KEY_FILE")
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(secret_file(tmp_path, "openai-key", "o")))
    key = load_settings(LLMSettings).api_key
    assert key is not None
    assert key.get_secret_value() == "openai-key"


def test_a_variable_set_both_ways_stops_the_service_naming_both_and_quoting_neither(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRIBUTARY_LLM_API_KEY", "in-the-environment")
    monkeypatch.setenv("TRIBUTARY_LLM_API_KEY_FILE", str(secret_file(tmp_path, SECRET)))
    with pytest.raises(ConfigurationError) as caught:
        load_settings(LLMSettings)
    message = str(caught.value)
    assert "TRIBUTARY_LLM_API_KEY and TRIBUTARY_LLM_API_KEY_FILE" in message
    assert SECRET not in message
    assert "in-the-environment" not in message


def test_an_unreadable_file_stops_the_service_naming_the_variable_and_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "not-mounted" / "api-key"
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(missing))
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY_FILE") as caught:
        load_settings(LLMSettings)
    assert str(missing) in str(caught.value)


def test_files_of_variables_no_setting_reads_are_left_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An unrelated *_FILE (SSL_CERT_FILE, say) is not opened, even when it cannot be.
    monkeypatch.setenv("TRIBUTARY_NOT_A_SETTING_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("SSL_CERT_FILE_FILE", str(tmp_path / "missing"))
    assert load_settings(ConsumerSettings).max_in_flight == 64


def test_an_empty_file_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_LLM_API_KEY_FILE", "")
    assert load_settings(LLMSettings).api_key is None


def test_every_settings_class_of_the_services_reads_files() -> None:
    """A settings class outside the common base would ignore its ``_FILE`` variables."""
    classes = settings_classes()
    assert len(classes) >= 10
    plain = [cls.__qualname__ for cls in classes if not issubclass(cls, TributarySettings)]
    assert not plain, f"derive these from TributarySettings: {plain}"

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from tributary_shared.core.redaction import Redactor
from tributary_shared.runtime.logs import JsonFormatter, step_context, workflow_context
from tributary_shared.runtime.settings import (
    ConfigurationError,
    ConsumerSettings,
    LLMSettings,
    load_settings,
)


def test_a_bad_variable_is_named_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_MAX_IN_FLIGHT", "lots")
    with pytest.raises(ConfigurationError, match="TRIBUTARY_MAX_IN_FLIGHT"):
        load_settings(ConsumerSettings)


def test_llm_settings_fall_back_to_openai_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRIBUTARY_LLM_BASE_URL", "TRIBUTARY_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://llm.example/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallbackkey123")
    monkeypatch.setenv("TRIBUTARY_PLANNER_MODEL", "big-model")
    settings = load_settings(LLMSettings)
    assert settings.base_url == "http://llm.example/v1"
    assert settings.model_for("planner") == "big-model"
    assert "fallbackkey" not in repr(settings)


def test_tributary_llm_variables_win_over_openai_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://a.example/v1")
    monkeypatch.setenv("TRIBUTARY_LLM_BASE_URL", "http://b.example/v1")
    assert load_settings(LLMSettings).base_url == "http://b.example/v1"


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer abcdef1234567890",
        "Authorization: Basic dXNlcjoxMjM0NTY3ODkw",
        "api_key=sk-live-0123456789abcdef",
        '{"api_key": "0123456789abcdef"}',
        "connecting to redis://app:0123456789abcdef@redis:6379/0 failed",
        "retrying with client_secret=0123456789abcdef&grant_type=client_credentials",
        "key trb_0123456789ab_0123456789abcdefABCDEF0123456789abcdefABCD was revoked",
    ],
)
def test_log_lines_and_their_tracebacks_are_redacted(line: str) -> None:
    formatter = JsonFormatter("planner", "planner-0")
    try:
        raise RuntimeError(line)
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "%s", (line,), sys.exc_info())
    entry = json.loads(formatter.format(record))
    for text in (entry["message"], entry["exception"]):
        assert "0123456789abcdef" not in text
        assert "1234567890" not in text
        assert "dXNlcjoxMjM0NTY3ODkw" not in text
        assert "[REDACTED]" in text


def test_log_lines_are_redacted_with_the_configured_key_prefixes() -> None:
    formatter = JsonFormatter("planner", "", redact=Redactor(["acme_"]))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", ("acme_0123456789",), None)
    assert json.loads(formatter.format(record))["message"] == "key acme_[REDACTED]"


def test_log_lines_are_json_and_carry_the_workflow_id() -> None:
    formatter = JsonFormatter("planner", "planner-0")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "planned %d steps", (3,), None)
    with workflow_context("wf_abc"):
        entry = json.loads(formatter.format(record))
    assert entry["message"] == "planned 3 steps"
    assert entry["workflow_id"] == "wf_abc"
    assert entry["service"] == "planner"
    assert "step_id" not in entry


def test_log_lines_of_a_task_started_in_a_step_carry_its_step_id() -> None:
    formatter = JsonFormatter("agent-runner", "")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "called a tool", (), None)

    async def in_the_task() -> str:
        return formatter.format(record)

    async def run() -> str:
        with step_context("s2"):
            task = asyncio.create_task(in_the_task())
        return await task

    entry = json.loads(asyncio.run(run()))
    assert entry["step_id"] == "s2"


def test_a_large_llm_connection_budget_is_split_over_small_pools() -> None:
    from pydantic import SecretStr

    from tributary_shared.runtime.llm import LLMClient

    settings = LLMSettings.model_validate(
        {"TRIBUTARY_LLM_API_KEY": SecretStr("k"), "TRIBUTARY_LLM_MAX_CONNECTIONS": 6000}
    )
    client = LLMClient(settings)
    assert len(client._owned_pools) == 24
    small = LLMClient(LLMSettings.model_validate({"TRIBUTARY_LLM_API_KEY": SecretStr("k")}))
    assert len(small._owned_pools) == 4

"""The shared LLM client against the scripted server, through the real openai SDK over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from tributary_scripted_llm import ScriptedLLMAdmin, ScriptedLLMServer
from tributary_shared.core.errors import FatalError, ModelError, TransientError
from tributary_shared.core.events import TokenUsage
from tributary_shared.runtime.llm import Completion, LLMClient, Message
from tributary_shared.runtime.llm.structured import complete_structured
from tributary_shared.runtime.settings import LLMSettings

pytestmark = pytest.mark.integration


def client_settings(llm: ScriptedLLMServer, **extra: object) -> LLMSettings:
    return LLMSettings.model_validate(
        {
            "TRIBUTARY_LLM_BASE_URL": llm.base_url,
            "TRIBUTARY_LLM_API_KEY": SecretStr("test-key"),
            "TRIBUTARY_LLM_TIMEOUT_S": 1.0,
            "TRIBUTARY_LLM_MAX_ATTEMPTS": 3,
            "TRIBUTARY_LLM_MAX_BACKOFF_S": 2.0,
            # A call that keeps failing gives up within the test, not after an hour.
            "TRIBUTARY_LLM_PATIENCE_S": 3.0,
            **extra,
        }
    )


@pytest.fixture
async def client(llm: ScriptedLLMServer) -> AsyncIterator[LLMClient]:
    llm_client = LLMClient(client_settings(llm))
    yield llm_client
    await llm_client.close()


def ask(marker: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": f"hello {marker}"}]


def served(admin: ScriptedLLMAdmin, marker: str) -> int:
    return len(admin.requests(contains=marker))


async def test_429_is_retried_after_the_retry_after_delay(
    client: LLMClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker,
        responses=[{"status": 429, "headers": {"Retry-After": "1"}}, {"content": "fine"}],
    )
    started = time.monotonic()
    completion = await client.complete(role="agent", messages=ask(marker))
    assert completion.content == "fine"
    assert time.monotonic() - started >= 1.0  # honoured Retry-After
    assert served(llm_admin, marker) == 2  # the SDK did not retry on its own


async def test_a_burst_of_500s_is_ridden_out(
    client: LLMClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker, responses=[{"status": 500}, {"status": 503}, {"content": "back"}]
    )
    assert (await client.complete(role="agent", messages=ask(marker))).content == "back"


async def test_persistent_5xx_gives_up_once_its_patience_is_spent(
    client: LLMClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(contains=marker, responses=[{"status": 502}])
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        await client.complete(role="agent", messages=ask(marker))
    assert caught.value.code == "llm_unavailable"
    assert time.monotonic() - started < 3.0 + 1.0  # TRIBUTARY_LLM_PATIENCE_S, then no more
    assert served(llm_admin, marker) >= 3  # past TRIBUTARY_LLM_MAX_ATTEMPTS while it lasted


async def test_a_hang_past_the_timeout_is_a_transient_timeout(
    client: LLMClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(contains=marker, responses=[{"hang": True}, {"content": "late but fine"}])
    completion = await client.complete(role="agent", messages=ask(marker))
    assert completion.content == "late but fine"
    always = marker.replace("#t", "#hang")
    llm_admin.add_rule(contains=always, responses=[{"hang": True}])
    with pytest.raises(TransientError) as caught:
        await client.complete(role="agent", messages=ask(always))
    assert caught.value.code == "llm_timeout"


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "llm_auth_failed"), (403, "llm_permission_denied"), (404, "llm_model_not_found")],
)
async def test_fatal_statuses_fail_at_once_without_retry(
    client: LLMClient, llm_admin: ScriptedLLMAdmin, marker: str, status: int, code: str
) -> None:
    llm_admin.add_rule(
        contains=marker,
        responses=[{"status": status, "error": {"message": "secret provider detail sk-123"}}],
    )
    with pytest.raises(FatalError) as caught:
        await client.complete(role="agent", messages=ask(marker))
    assert caught.value.code == code
    assert "sk-123" not in caught.value.message
    assert served(llm_admin, marker) == 1


@pytest.mark.parametrize(
    ("response", "code"),
    [
        ({"refusal": "no"}, "llm_refused"),
        ({"content": "cut", "finish_reason": "length"}, "llm_truncated"),
        ({"content": "", "finish_reason": "content_filter"}, "llm_filtered"),
    ],
)
async def test_unusable_completions_are_model_errors(
    client: LLMClient,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
    response: dict[str, object],
    code: str,
) -> None:
    llm_admin.add_rule(contains=marker, responses=[response])
    with pytest.raises(ModelError) as caught:
        await client.complete(role="agent", messages=ask(marker))
    assert caught.value.code == code


class Answer(BaseModel):
    value: int


async def structured(client: LLMClient, marker: str) -> tuple[Answer, TokenUsage]:
    async def once(conversation: Sequence[Message], response_format: dict[str, Any]) -> Completion:
        return await client.complete(
            role="planner", messages=conversation, response_format=response_format
        )

    return await complete_structured(
        once, messages=ask(marker), output=Answer, schema_name="answer"
    )


async def test_structured_output_gets_one_corrective_reprompt(
    client: LLMClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker, responses=[{"content": "{not json"}, {"json": {"value": 7}}]
    )
    answer, usage = await structured(client, marker)
    assert answer == Answer(value=7)
    assert usage.total_tokens > 0
    second = llm_admin.requests(contains=marker)[-1]
    assert "did not match the required JSON schema" in str(second.messages[-1])


async def test_structured_output_that_stays_invalid_fails_clearly(
    client: LLMClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(contains=marker, responses=[{"json": {"value": "seven"}}])
    with pytest.raises(ModelError) as caught:
        await structured(client, marker)
    assert caught.value.code == "llm_schema_mismatch"


async def test_a_failing_model_is_skipped_for_a_while_after_its_retries_run_out(
    llm: ScriptedLLMServer, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(contains=marker, model="primary", responses=[{"status": 503}])
    breaker = LLMClient(client_settings(llm, TRIBUTARY_LLM_FALLBACK_COOLDOWN_S=60))
    try:
        for _ in range(2):
            completion = await breaker.complete(
                role="agent", messages=ask(marker), models=["primary", "backup"]
            )
            assert completion.model == "backup"
    finally:
        await breaker.close()
    models = [r.model for r in llm_admin.requests(contains=marker)]
    assert models == ["primary"] * 3 + ["backup", "backup"]

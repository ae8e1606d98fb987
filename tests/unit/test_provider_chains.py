"""Deployments, chains and patience, seen from the endpoints.

The real LLM client and ``openai`` SDK talk to the scripted server in-process;
its hosts stand for the deployments (``http://<host>/v1``), and a host taken
down refuses connections, as a stopped endpoint does. What each host received
is counted in the transport.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support.scripted import HOST, ScriptedEndpoint, deployment, rule
from tributary_shared.core.completions import CallContext, Message, ModelWait
from tributary_shared.core.errors import DeadlineExceeded, LogicError, TransientError, recovery_for
from tributary_shared.runtime.llm import LLMClient
from tributary_shared.runtime.settings import ConfigurationError, LLMSettings

HELLO: list[Message] = [{"role": "user", "content": "hello"}]
MODEL = "gpt-4o-mini"
BACKUP = "backup-llm"
CHAIN = {MODEL: [deployment("primary", HOST), deployment("secondary", BACKUP)]}


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


def chained(endpoint: ScriptedEndpoint, **overrides: object) -> LLMClient:
    return endpoint.client(TRIBUTARY_LLM_DEPLOYMENTS=CHAIN, **overrides)


class Waits:
    """A call's wait notices, as the metered layer would get them."""

    def __init__(self) -> None:
        self.seen: list[ModelWait] = []
        self.told_at: list[float] = []

    async def __call__(self, wait: ModelWait) -> bool:
        self.seen.append(wait)
        self.told_at.append(time.time())
        return True


async def back_after(endpoint: ScriptedEndpoint, seconds: float, host: str = HOST) -> None:
    await asyncio.sleep(seconds)
    endpoint.bring_up(host)


async def test_a_dead_first_deployment_hands_the_call_to_the_second(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.take_down(HOST)
    client = chained(endpoint, TRIBUTARY_LLM_FALLBACK_COOLDOWN_S=60)
    completion = await client.complete(role="agent", messages=HELLO)
    assert completion.deployment == "secondary"
    assert endpoint.attempts_at(HOST) == 3  # TRIBUTARY_LLM_MAX_ATTEMPTS, then handed over
    assert endpoint.attempts_at(BACKUP) == 1
    assert endpoint.models == [MODEL]  # only the second ever answered

    # Its tries just ran out: the next call goes to the second deployment first.
    assert (await client.complete(role="agent", messages=HELLO)).deployment == "secondary"
    assert endpoint.attempts_at(HOST) == 3


async def test_each_deployment_gets_its_own_model_id_and_key(endpoint: ScriptedEndpoint) -> None:
    chain = {MODEL: [deployment("eu", BACKUP, model="gpt-eu", api_key="eu-key")]}
    client = endpoint.client(TRIBUTARY_LLM_DEPLOYMENTS=chain)
    completion = await client.complete(role="agent", messages=HELLO)
    assert (completion.deployment, completion.model) == ("eu", "gpt-eu")
    assert endpoint.attempts_at(BACKUP) == 1
    assert endpoint.models == ["gpt-eu"]


async def test_a_model_with_no_deployments_of_its_own_goes_to_the_base_url_under_its_name(
    endpoint: ScriptedEndpoint,
) -> None:
    client = chained(endpoint)
    completion = await client.complete(role="agent", messages=HELLO, models=["other"])
    assert (completion.deployment, completion.model) == ("other", "other")  # named after it
    assert endpoint.attempts_at(HOST) == 1


async def test_an_outage_is_waited_out_and_the_wait_is_told_now_and_then(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.take_down(HOST)
    client = endpoint.client(
        TRIBUTARY_LLM_MAX_BACKOFF_S=0.05, TRIBUTARY_LLM_WAIT_NOTICE_INTERVAL_S=0.5
    )
    waits = Waits()
    comeback = asyncio.create_task(back_after(endpoint, 1.6))
    started = time.time()
    completion = await client.complete(
        role="agent",
        messages=HELLO,
        context=CallContext("wf_1", "acme", deadline_at=time.time() + 60),
        on_wait=waits,
    )
    await comeback
    assert completion.content
    tries = endpoint.attempts_at(HOST)
    assert tries > 10  # it kept trying, every 50 ms at most
    # Told at its first pause, then at most every 0.5 s: not once per try.
    assert 2 <= len(waits.seen) < tries
    assert all(b - a >= 0.49 for a, b in pairwise(waits.told_at))
    first = waits.seen[0]
    assert first.error is not None
    assert (first.model, first.deployment, first.error.code) == (MODEL, MODEL, "llm_unavailable")
    assert first.attempt == 1  # told at its first pause
    assert first.next_try_at is not None
    assert started <= first.waiting_since <= first.next_try_at <= first.waiting_since + 0.1


async def test_a_retry_after_is_told_as_the_next_try(endpoint: ScriptedEndpoint) -> None:
    endpoint.add_rule(rule({"status": 429, "headers": {"Retry-After": "1"}}, {"content": "fine"}))
    waits = Waits()
    completion = await endpoint.client().complete(role="agent", messages=HELLO, on_wait=waits)
    assert completion.content == "fine"
    [wait] = waits.seen
    assert wait.error is not None
    assert wait.error.code == "llm_rate_limited"
    assert wait.next_try_at is not None
    assert wait.next_try_at - wait.waiting_since == pytest.approx(1.0, abs=0.05)
    first, second = endpoint.requests
    assert second.timestamp - first.timestamp >= 1.0


async def test_a_rate_limited_deployment_hands_over_to_the_next_at_once(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.add_rule(rule({"status": 429, "headers": {"Retry-After": "30"}}, model="gpt-a"))
    chain = {MODEL: [deployment("a", HOST, model="gpt-a"), deployment("b", BACKUP, model="gpt-b")]}
    started = time.monotonic()
    completion = await endpoint.client(TRIBUTARY_LLM_DEPLOYMENTS=chain).complete(
        role="agent", messages=HELLO
    )
    assert completion.deployment == "b"
    assert endpoint.models == ["gpt-a", "gpt-b"]
    assert time.monotonic() - started < 1.0


async def test_a_deadline_that_passes_during_an_outage_ends_the_call_at_it(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.take_down(HOST)
    endpoint.take_down(BACKUP)
    client = chained(endpoint, TRIBUTARY_LLM_MAX_BACKOFF_S=0.3)
    deadline = time.time() + 1.5
    with pytest.raises(DeadlineExceeded) as caught:
        await client.complete(
            role="agent", messages=HELLO, context=CallContext("wf_1", "acme", deadline)
        )
    ended = time.time()
    assert deadline - 0.01 <= ended < deadline + 1.0  # at the deadline: not before it
    assert caught.value.code == "deadline_exceeded"
    assert "llm_unavailable" in caught.value.message
    assert recovery_for(caught.value).fails_workflow
    tries = endpoint.attempts_at(HOST) + endpoint.attempts_at(BACKUP)
    assert endpoint.attempts_at(HOST) > 0
    assert endpoint.attempts_at(BACKUP) > 0
    await asyncio.sleep(0.5)
    assert endpoint.attempts_at(HOST) + endpoint.attempts_at(BACKUP) == tries  # and stopped


async def test_without_a_deadline_the_patience_ends_the_wait(endpoint: ScriptedEndpoint) -> None:
    endpoint.take_down(HOST)
    client = endpoint.client(TRIBUTARY_LLM_PATIENCE_S=0.8, TRIBUTARY_LLM_MAX_BACKOFF_S=0.1)
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        await client.complete(role="agent", messages=HELLO)
    assert caught.value.code == "llm_unavailable"
    assert 0.6 < time.monotonic() - started < 1.5


def test_a_deployment_without_a_key_stops_the_process_at_start() -> None:
    settings = LLMSettings.model_validate(
        {"TRIBUTARY_LLM_DEPLOYMENTS": {MODEL: [{"id": "eu", "base_url": "http://eu/v1"}]}}
    )
    with pytest.raises(ConfigurationError, match="deployment 'eu' has no api_key"):
        LLMClient(settings)


@pytest.mark.parametrize(
    ("deployments", "problem"),
    [
        ({MODEL: []}, "given no deployment"),
        ({MODEL: [{"id": "a"}], "other": [{"id": "a"}]}, "'a' is given twice"),
        ({"other": [{"id": MODEL}]}, "the name of a model served by TRIBUTARY_LLM_BASE_URL"),
        ({MODEL: [{"id": "has space"}]}, "should match pattern"),
        ({MODEL: [{"id": "a", "rpm": 0}]}, "greater than or equal to 1"),
        ({MODEL: [{"id": "a", "region": "eu"}]}, "Extra inputs are not permitted"),
    ],
)
def test_deployments_that_make_no_sense_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, deployments: object, problem: str
) -> None:
    import json

    from tributary_shared.runtime.settings import load_settings

    monkeypatch.setenv("TRIBUTARY_LLM_DEPLOYMENTS", json.dumps(deployments))
    with pytest.raises(ConfigurationError) as caught:
        load_settings(LLMSettings)
    assert "TRIBUTARY_LLM_DEPLOYMENTS" in str(caught.value)
    assert problem in str(caught.value)


def test_a_deployments_key_never_shows_in_errors_or_reprs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tributary_shared.runtime.settings import load_settings

    monkeypatch.setenv(
        "TRIBUTARY_LLM_DEPLOYMENTS",
        '{"m": [{"id": "a", "api_key": "sk-very-secret", "rpm": 0}]}',
    )
    with pytest.raises(ConfigurationError) as caught:
        load_settings(LLMSettings)
    assert "sk-very-secret" not in str(caught.value)
    monkeypatch.setenv(
        "TRIBUTARY_LLM_DEPLOYMENTS", '{"m": [{"id": "a", "api_key": "sk-very-secret"}]'
    )
    with pytest.raises(ConfigurationError, match="TRIBUTARY_LLM_DEPLOYMENTS: not valid JSON"):
        load_settings(LLMSettings)
    monkeypatch.setenv(
        "TRIBUTARY_LLM_DEPLOYMENTS", '{"m": [{"id": "a", "api_key": "sk-very-secret"}]}'
    )
    assert "sk-very-secret" not in repr(load_settings(LLMSettings))


async def test_a_call_no_longer_wanted_stops_at_its_next_notice(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.take_down()
    answers = iter([True, False])

    async def wanted(wait: ModelWait) -> bool:
        return next(answers)

    client = endpoint.client(
        TRIBUTARY_LLM_MAX_BACKOFF_S=0.05, TRIBUTARY_LLM_WAIT_NOTICE_INTERVAL_S=0.2
    )
    with pytest.raises(LogicError) as caught:
        await asyncio.wait_for(
            client.complete(role="planner", messages=HELLO, on_wait=wanted), timeout=5
        )
    assert caught.value.code == "workflow_ended"
    tries = endpoint.attempts_at()
    await asyncio.sleep(0.3)
    assert endpoint.attempts_at() == tries


def test_deployments_with_their_keys_may_come_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tributary_shared.runtime.settings import load_settings

    secret = tmp_path / "deployments.json"
    secret.write_text('{"m": [{"id": "eu", "api_key": "sk-from-file"}]}\n')
    monkeypatch.setenv("TRIBUTARY_LLM_DEPLOYMENTS_FILE", str(secret))
    [eu] = load_settings(LLMSettings).deployments_for("m")
    assert eu.api_key is not None
    assert eu.api_key.get_secret_value() == "sk-from-file"

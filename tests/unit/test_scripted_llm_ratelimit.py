"""The scripted LLM's rate-limit mode: a provider's requests-per-minute bucket, its
headers and its 429s, counted for the tests that pace a whole stack against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from openai import AsyncOpenAI

from tributary_scripted_llm import RATE_LIMITED_RULE_ID, ScriptedLLMAdmin, ScriptedLLMServer
from tributary_scripted_llm.ratelimit import RequestBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_full_minute_goes_at_once_then_one_request_per_interval() -> None:
    clock = Clock()
    bucket = RequestBucket(requests_per_minute=60, burst=60, clock=clock)
    assert all(bucket.take().allowed for _ in range(60))
    refused = bucket.take()
    assert not refused.allowed
    assert refused.headers["x-ratelimit-limit-requests"] == "60"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["retry-after-ms"] == "1000"
    assert refused.headers["x-ratelimit-reset-requests"] == "60.000s"
    clock.now += 0.5
    assert not bucket.take().allowed
    clock.now += 0.5
    allowed = bucket.take()
    assert allowed.allowed
    assert "retry-after" not in allowed.headers
    assert (bucket.allowed, bucket.refused) == (61, 2)


def test_a_smaller_burst_spreads_the_same_minute() -> None:
    clock = Clock()
    bucket = RequestBucket(requests_per_minute=60, burst=1, clock=clock)
    assert bucket.take().allowed
    assert not bucket.take().allowed
    clock.now += 5  # the bucket holds one at most, however long it waited
    assert [bucket.take().allowed for _ in range(2)] == [True, False]


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
def admin(llm: ScriptedLLMServer) -> Iterator[ScriptedLLMAdmin]:
    llm.admin.reset()
    yield llm.admin
    llm.admin.reset()


@pytest.fixture
async def client(llm: ScriptedLLMServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=llm.base_url, api_key="x", max_retries=0) as sdk:
        yield sdk


async def test_beyond_the_limit_requests_get_429_with_the_provider_headers(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    admin.add_rule(responses=[{"content": "first"}, {"content": "second"}])
    admin.set_rate_limit(2)
    answered = []
    for _ in range(2):
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        answered.append(raw.parse().choices[0].message.content)
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert answered == ["first", "second"]  # a refused request uses no scripted response
    stats = admin.rate_limit()
    assert (stats.requests_per_minute, stats.allowed, stats.refused) == (2, 2, 1)
    assert [r.rule_id == RATE_LIMITED_RULE_ID for r in admin.requests()] == [False, False, True]
    admin.set_rate_limit(0)
    await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert admin.rate_limit().requests_per_minute == 0

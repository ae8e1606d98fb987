from __future__ import annotations

import pytest

from tributary_shared.core.events import TokenUsage, WorkflowOptions
from tributary_shared.runtime.budget import budget_limits
from tributary_shared.runtime.budget.pricing import (
    cost_micro_usd,
    estimate_prompt_tokens,
    price_of,
    settled_micro_usd,
    worst_case_micro_usd,
)
from tributary_shared.runtime.llm.routing import model_chain
from tributary_shared.runtime.settings import BudgetSettings, LLMSettings, ModelPrice


def llm_settings(**values: object) -> LLMSettings:
    return LLMSettings.model_validate(
        {
            "TRIBUTARY_PLANNER_MODEL": "plan-m",
            "TRIBUTARY_AGENT_MODEL": "agent-m",
            "TRIBUTARY_SYNTHESIZER_MODEL": "synth-m",
            **values,
        }
    )


def test_each_role_gets_its_model() -> None:
    settings = llm_settings()
    assert model_chain(settings, "planner") == ("plan-m",)
    assert model_chain(settings, "synthesizer") == ("synth-m",)
    assert model_chain(settings, "agent", complexity="high") == ("agent-m",)


def test_agent_calls_route_by_complexity_and_iteration() -> None:
    settings = llm_settings(
        TRIBUTARY_AGENT_MODEL_SIMPLE="small",
        TRIBUTARY_AGENT_MODEL_COMPLEX="large",
        TRIBUTARY_ESCALATE_AFTER_ITERATIONS=3,
    )
    assert model_chain(settings, "agent", complexity="low", iteration=1) == ("small",)
    assert model_chain(settings, "agent", complexity="medium", iteration=1) == ("agent-m",)
    assert model_chain(settings, "agent", complexity="high", iteration=1) == ("large",)
    assert model_chain(settings, "agent", complexity="low", iteration=4) == ("large",)


def test_the_fallback_model_follows_the_primary() -> None:
    settings = llm_settings(TRIBUTARY_FALLBACK_MODEL="backup")
    assert model_chain(settings, "planner") == ("plan-m", "backup")
    same = llm_settings(TRIBUTARY_FALLBACK_MODEL="plan-m")
    assert model_chain(same, "planner") == ("plan-m",)


PRICES = {
    "cheap": ModelPrice(prompt_per_1k_usd=0.1, completion_per_1k_usd=0.2),
    "dear": ModelPrice(prompt_per_1k_usd=10, completion_per_1k_usd=30),
}


def test_costs_are_exact_micro_dollars() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=500)
    assert cost_micro_usd(PRICES, "cheap", usage) == 200_000  # $0.10 + $0.10
    assert cost_micro_usd(PRICES, "unpriced", usage) == 0
    assert worst_case_micro_usd(PRICES, ("cheap", "dear"), usage) == 25_000_000


SERVED_PRICES = {
    "gpt-4o": ModelPrice(prompt_per_1k_usd=2.5, completion_per_1k_usd=10),
    "gpt-4o-mini": ModelPrice(prompt_per_1k_usd=0.15, completion_per_1k_usd=0.6),
    "claude-3-5-sonnet": ModelPrice(prompt_per_1k_usd=3, completion_per_1k_usd=15),
    "gpt-4": ModelPrice(prompt_per_1k_usd=30, completion_per_1k_usd=60),
}


@pytest.mark.parametrize(
    ("served", "priced_as"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # OpenAI's dated snapshot
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4o-mini-search-preview", "gpt-4o-mini"),  # the longest priced name it begins with
        ("gpt-4oo", None),  # a name that merely shares letters is not a variant
        ("llama-3.1-8b", None),
    ],
)
def test_served_model_names_find_their_configured_price(served: str, priced_as: str | None) -> None:
    expected = SERVED_PRICES[priced_as] if priced_as is not None else None
    assert price_of(SERVED_PRICES, served) == expected


def test_a_dated_model_name_costs_what_its_model_costs() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=1000)
    settled = settled_micro_usd(
        SERVED_PRICES, served="gpt-4o-mini-2024-07-18", models=("gpt-4o-mini",), usage=usage
    )
    assert settled == 750_000  # $0.15 + $0.60


def test_a_served_model_without_a_price_is_charged_the_reserved_price_not_nothing() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=1000)
    chain = ("gpt-4o-mini", "gpt-4o")
    settled = settled_micro_usd(SERVED_PRICES, served="mystery-model", models=chain, usage=usage)
    assert (
        settled == worst_case_micro_usd(SERVED_PRICES, chain, usage) == 12_500_000
    )  # $2.50 + $10 at gpt-4o


def test_prompt_estimates_err_high() -> None:
    message = {"role": "user", "content": "word " * 400}  # about 400 real tokens
    assert estimate_prompt_tokens([message]) >= 400


@pytest.mark.parametrize(
    ("options", "tokens", "micro", "policy"),
    [
        ({}, 1000, None, "partial"),
        ({"token_budget": 50, "on_budget_exhausted": "fail"}, 50, None, "fail"),
        ({"cost_budget_usd": 0.25}, 1000, 250_000, "partial"),
    ],
)
def test_budget_limits_come_from_options_then_defaults(
    options: dict[str, object], tokens: int, micro: int | None, policy: str
) -> None:
    defaults = BudgetSettings(default_token_budget=1000, on_budget_exhausted="partial")
    limits = budget_limits(WorkflowOptions.model_validate(options), defaults)
    assert (limits.tokens, limits.micro_usd, limits.policy) == (tokens, micro, policy)

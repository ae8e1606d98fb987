"""``llm_cost_usd_total``: the cost by model a dashboard adds up is what budgets are charged."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.unit.test_metered_llm import MODEL, Setup, StandInClient
from tributary_shared.core.budget import BudgetLimits
from tributary_shared.core.events import TokenUsage
from tributary_shared.runtime.llm.routing import model_served_by
from tributary_shared.runtime.settings import LLMSettings


def cost_counted() -> float:
    labels = {"model": MODEL, "deployment": MODEL, "role": "synthesizer"}
    return REGISTRY.get_sample_value("llm_cost_usd_total", labels) or 0.0


async def test_the_cost_counted_is_the_cost_charged_to_the_budget() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=1000)  # $0.75 a call
    setup = Setup(StandInClient(served="gpt-4o-mini-2024-07-18", usage=usage))
    await setup.start(BudgetLimits(tokens=None, micro_usd=10_000_000, policy="partial"))
    before = cost_counted()
    await setup.call()
    await setup.call()
    state = await setup.ledger.state(setup.workflow_id)
    # Labelled with the configured model, not the dated name the endpoint answered with.
    assert cost_counted() - before == pytest.approx(state.used_cost_usd) == pytest.approx(1.5)


def test_the_model_label_is_the_chain_model_its_deployment_serves() -> None:
    settings = LLMSettings.model_validate({"TRIBUTARY_SYNTHESIZER_MODEL": MODEL})
    chain = ("gpt-4o", MODEL)
    assert model_served_by(settings, chain, MODEL) == MODEL  # served by its fallback
    assert model_served_by(settings, chain, "gpt-4o") == "gpt-4o"
    assert model_served_by(settings, chain, "unknown-deployment") == "gpt-4o"

"""Token estimates and prices, pure: what a call may cost before it is made, and
what it cost after.

Estimates err high on purpose: a reservation that is too large only refuses a
call a little early, while one that is too small could overspend.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tributary_shared.core.budget import MICRO_USD
from tributary_shared.core.events import TokenUsage
from tributary_shared.runtime.settings import ModelPrice

# Tokenizers average about four characters a token for English; three leaves
# headroom for code, numbers and other scripts. Each message costs a few more.
_CHARS_PER_TOKEN = 3
_PER_MESSAGE_OVERHEAD = 8

# Snapshot suffixes endpoints append: -2024-07-18 (OpenAI), -20240620 and @20240620
# (Anthropic, Vertex), -0613 (older OpenAI models).
_DATE_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")
_SEPARATORS = frozenset("-@:./_")


def estimate_prompt_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> int:
    chars = sum(len(json.dumps(m, ensure_ascii=False)) for m in messages)
    chars += sum(len(json.dumps(t, ensure_ascii=False)) for t in tools or ())
    return math.ceil(chars / _CHARS_PER_TOKEN) + _PER_MESSAGE_OVERHEAD * len(messages)


def price_of(prices: Mapping[str, ModelPrice], model: str) -> ModelPrice | None:
    """The configured price of ``model``, also when an endpoint names a dated variant.

    Endpoints answer with the model that served a call, often a dated snapshot
    of the one asked for (``gpt-4o-mini-2024-07-18`` for ``gpt-4o-mini``). The
    name is looked up as written, then without a date suffix, then as the
    longest priced name it begins with (followed by a separator).
    """
    if model in prices:
        return prices[model]
    undated = _DATE_SUFFIX.sub("", model)
    if undated in prices:
        return prices[undated]
    stems = [name for name in prices if model.startswith(name) and model[len(name)] in _SEPARATORS]
    return prices[max(stems, key=len)] if stems else None


def _cost(price: ModelPrice, usage: TokenUsage) -> int:
    dollars = (
        usage.prompt_tokens * price.prompt_per_1k_usd
        + usage.completion_tokens * price.completion_per_1k_usd
    ) / 1000
    return math.ceil(dollars * MICRO_USD)


def cost_micro_usd(prices: Mapping[str, ModelPrice], model: str, usage: TokenUsage) -> int:
    """Cost in millionths of a dollar (integers keep the Redis arithmetic exact); 0 unpriced."""
    price = price_of(prices, model)
    return _cost(price, usage) if price is not None else 0


def worst_case_micro_usd(
    prices: Mapping[str, ModelPrice], models: Sequence[str], usage: TokenUsage
) -> int:
    """The most a call may cost on any model of its fallback chain."""
    return max((cost_micro_usd(prices, model, usage) for model in models), default=0)


def settled_micro_usd(
    prices: Mapping[str, ModelPrice], *, served: str, models: Sequence[str], usage: TokenUsage
) -> int:
    """What a call served by ``served`` costs, after it was reserved for ``models``.

    A served model with no price is charged at the dearest price of the chain,
    the one its reservation was made at, never at nothing: an endpoint that
    renames its models must not make cost budgets endless.
    """
    price = price_of(prices, served)
    if price is not None:
        return _cost(price, usage)
    return worst_case_micro_usd(prices, models, usage)

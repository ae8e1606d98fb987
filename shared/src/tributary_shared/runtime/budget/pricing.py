"""Token estimates and prices, pure: what a call may cost before it is made.

Estimates err high on purpose: a reservation that is too large only refuses a
call a little early, while one that is too small could overspend.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tributary_shared.core.budget import MICRO_USD
from tributary_shared.core.events import TokenUsage
from tributary_shared.runtime.settings import ModelPrice

# Tokenizers average about four characters a token for English; three leaves
# headroom for code, numbers and other scripts. Each message costs a few more.
_CHARS_PER_TOKEN = 3
_PER_MESSAGE_OVERHEAD = 8


def estimate_prompt_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> int:
    chars = sum(len(json.dumps(m, ensure_ascii=False)) for m in messages)
    chars += sum(len(json.dumps(t, ensure_ascii=False)) for t in tools or ())
    return math.ceil(chars / _CHARS_PER_TOKEN) + _PER_MESSAGE_OVERHEAD * len(messages)


def cost_micro_usd(prices: Mapping[str, ModelPrice], model: str, usage: TokenUsage) -> int:
    """Cost in millionths of a dollar (integers keep the Redis arithmetic exact)."""
    price = prices.get(model)
    if price is None:
        return 0
    dollars = (
        usage.prompt_tokens * price.prompt_per_1k_usd
        + usage.completion_tokens * price.completion_per_1k_usd
    ) / 1000
    return math.ceil(dollars * MICRO_USD)


def worst_case_micro_usd(
    prices: Mapping[str, ModelPrice], models: Sequence[str], usage: TokenUsage
) -> int:
    """The most a call may cost on any model of its fallback chain."""
    return max((cost_micro_usd(prices, model, usage) for model in models), default=0)

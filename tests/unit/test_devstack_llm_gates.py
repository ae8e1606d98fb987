"""``make status`` shows each LLM deployment's shared gate: breaker, queue, limits, pause."""

from __future__ import annotations

from tributary_devstack.llm_gates import format_gates
from tributary_shared.core.admission import BreakerState, DeploymentState, RateLimits

NOW = 1_000.0


def test_each_deployment_shows_its_breaker_queue_limits_and_pause() -> None:
    text = format_gates(
        [
            (
                "gpt-4o-mini",
                DeploymentState(
                    breaker=BreakerState.OPEN,
                    reopen_at=NOW + 7,
                    waiting=12,
                    limits=RateLimits(requests_per_minute=60, tokens_per_minute=90_000),
                    learned=RateLimits(requests_per_minute=60),
                ),
            ),
            (
                "local-llama",
                DeploymentState(breaker=BreakerState.CLOSED, failures=2, paused_until=NOW + 3),
            ),
        ],
        now=NOW,
    )
    header, first, second = text.splitlines()
    assert header.split()[:3] == ["LLM", "DEPLOYMENT", "BREAKER"]
    assert first.startswith("gpt-4o-mini")
    assert "open (probe in 7s)" in first
    assert " 12 " in first
    assert "60 rpm (learned), 90000 tpm" in first
    assert first.rstrip().endswith("-")
    assert "closed (2 failed)" in second
    assert "none" in second
    assert second.rstrip().endswith("3s more")


def test_no_deployment_used_yet() -> None:
    assert format_gates([]) == "LLM deployments: none used yet"

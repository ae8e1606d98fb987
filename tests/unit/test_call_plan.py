"""A call's way down and round its chain of deployments, decided without I/O.

``CallPlan`` says after each failed try where the next one goes and when; the
clock and the jitter are the test's, so every wait is exact.
"""

from __future__ import annotations

import pytest

from tributary_shared.core.errors import (
    DeadlineExceeded,
    FatalError,
    TransientError,
    TributaryError,
    recovery_for,
)
from tributary_shared.runtime.llm.chain import (
    CallPlan,
    Cooldowns,
    GiveUp,
    RetryPolicy,
    Target,
    TryAgain,
    chain_of,
)
from tributary_shared.runtime.settings import Deployment, LLMSettings

T0 = 1_000_000.0
EU = Target("gpt", Deployment(id="eu"))
US = Target("gpt", Deployment(id="us"))
BACKUP = Target("backup", Deployment(id="backup"))


def down(retry_after_s: float | None = None) -> TransientError:
    return TransientError("down", code="llm_unavailable", retry_after_s=retry_after_s)


def plan(
    *chain: Target,
    attempts: int = 3,
    backoff_s: float = 8.0,
    patience_s: float = 3600.0,
    deadline_at: float | None = None,
) -> CallPlan:
    policy = RetryPolicy(max_attempts=attempts, max_backoff_s=backoff_s, patience_s=patience_s)
    return CallPlan(chain, policy, deadline_at=deadline_at)


def again(step: TryAgain | GiveUp) -> TryAgain:
    assert isinstance(step, TryAgain), step
    return step


def test_a_transient_failure_is_tried_again_on_the_same_deployment_after_a_growing_pause() -> None:
    call = plan(EU, attempts=4, backoff_s=8.0)
    waits = []
    now = T0
    for _ in range(3):
        step = again(call.after_failure(down(), now=now, jitter=1.0))
        assert (step.target, step.handed_over_from) == (EU, None)
        waits.append(step.at - now)
        now = step.at
    assert waits == [0.5, 1.0, 2.0]  # doubling from 0.5 s (jitter 1: the full length)
    assert again(call.after_failure(down(), now=now, jitter=0.0)).at - now == 2.0  # half of 4


def test_pauses_stop_growing_at_the_ceiling() -> None:
    call = plan(EU, attempts=10, backoff_s=3.0)
    now = T0
    for _ in range(6):
        step = again(call.after_failure(down(), now=now, jitter=1.0))
        now = step.at
    assert again(call.after_failure(down(), now=now, jitter=1.0)).at - now == 3.0


def test_the_next_deployment_takes_over_at_once_when_one_has_had_its_tries() -> None:
    call = plan(EU, US, attempts=2)
    again(call.after_failure(down(), now=T0, jitter=0.5))
    step = again(call.after_failure(down(), now=T0 + 1, jitter=0.5))
    assert (step.target, step.handed_over_from, step.at) == (US, EU, T0 + 1)


def test_after_the_last_deployment_the_call_goes_round_again_after_a_pause() -> None:
    call = plan(EU, US, attempts=1)
    assert again(call.after_failure(down(), now=T0, jitter=1.0)).target == US
    step = again(call.after_failure(down(), now=T0, jitter=1.0))
    assert (step.target, step.handed_over_from) == (EU, US)
    assert step.at > T0  # not at once: every deployment just failed


def test_a_deployment_that_asks_for_time_is_not_asked_again_sooner_whatever_the_ceiling() -> None:
    call = plan(EU, backoff_s=0.5)
    step = again(call.after_failure(down(retry_after_s=20.0), now=T0, jitter=0.0))
    assert (step.target, step.at) == (EU, T0 + 20.0)


def test_a_deployment_that_asks_for_time_hands_over_to_the_next_at_once() -> None:
    call = plan(EU, US)
    step = again(call.after_failure(down(retry_after_s=20.0), now=T0, jitter=0.0))
    assert (step.target, step.at) == (US, T0)
    # Back round to it: not before the time it asked for.
    step = again(call.after_failure(down(retry_after_s=1.0), now=T0 + 1, jitter=0.0))
    assert (step.target, step.at) == (EU, T0 + 20.0)


def test_patience_ends_the_call_with_its_last_error_and_no_try_is_made_past_it() -> None:
    call = plan(EU, attempts=100, backoff_s=4.0, patience_s=30.0)
    now, tries = T0, []
    while True:
        step = call.after_failure(down(), now=now, jitter=1.0)
        if isinstance(step, GiveUp):
            break
        assert step.at <= T0 + 30.0
        tries.append(step.at)
        now = step.at
    assert step.error.code == "llm_unavailable"
    assert tries[-1] > T0 + 30.0 - 4.0  # it kept going until the next pause did not fit


def test_a_retry_after_beyond_the_patience_gives_up_at_once() -> None:
    call = plan(EU, patience_s=60.0)
    step = call.after_failure(down(retry_after_s=3600.0), now=T0, jitter=0.0)
    assert isinstance(step, GiveUp)


def test_no_patience_means_no_waiting_but_still_the_whole_chain() -> None:
    call = plan(EU, US, attempts=1, patience_s=0.0)
    assert again(call.after_failure(down(), now=T0, jitter=0.0)).target == US
    assert isinstance(call.after_failure(down(), now=T0, jitter=0.0), GiveUp)


def test_a_wait_that_would_pass_the_deadline_ends_at_it_and_the_call_stops_there() -> None:
    call = plan(EU, attempts=100, backoff_s=30.0, deadline_at=T0 + 10)
    now = T0
    while True:
        assert call.stop_before_try(now) is None
        step = again(call.after_failure(down(), now=now, jitter=1.0))
        assert step.at <= T0 + 10  # never past the deadline
        now = step.at
        if now == T0 + 10:
            break
    stop = call.stop_before_try(now)
    assert isinstance(stop, DeadlineExceeded)
    assert stop.code == "deadline_exceeded"
    assert "llm_unavailable" in stop.message
    assert recovery_for(stop).fails_workflow


def test_no_call_starts_past_the_deadline() -> None:
    call = plan(EU, deadline_at=T0)
    assert isinstance(call.stop_before_try(T0 + 1), DeadlineExceeded)


def test_a_requests_timeout_never_reaches_past_the_deadline() -> None:
    assert plan(EU, deadline_at=T0 + 7).timeout_s(T0, request_timeout_s=60) == 7
    assert plan(EU).timeout_s(T0, request_timeout_s=60) == 60


def test_an_unknown_model_hands_over_at_once_and_is_not_tried_again() -> None:
    unknown = FatalError("no such model", code="llm_model_not_found")
    call = plan(EU, BACKUP, attempts=1)
    step = again(call.after_failure(unknown, now=T0, jitter=0.0))
    assert (step.target, step.at) == (BACKUP, T0)
    for _ in range(3):  # round and round: the backup only
        step = again(call.after_failure(down(), now=step.at, jitter=0.0))
        assert step.target == BACKUP


def test_an_unknown_model_with_nothing_after_it_ends_the_call() -> None:
    unknown = FatalError("no such model", code="llm_model_not_found")
    step = plan(EU).after_failure(unknown, now=T0, jitter=0.0)
    assert isinstance(step, GiveUp)
    assert step.error is unknown


@pytest.mark.parametrize(
    "error",
    [FatalError("bad key", code="llm_auth_failed"), TributaryError("bug")],
)
def test_an_error_that_is_neither_retried_nor_handed_over_ends_the_call(
    error: TributaryError,
) -> None:
    step = plan(EU, US).after_failure(error, now=T0, jitter=0.0)
    assert isinstance(step, GiveUp)
    assert step.error is error


def test_the_chain_is_each_models_deployments_in_order() -> None:
    settings = LLMSettings.model_validate(
        {
            "TRIBUTARY_LLM_DEPLOYMENTS": {
                "gpt": [{"id": "eu", "model": "gpt-eu"}, {"id": "us"}],
            }
        }
    )
    chain = chain_of(settings, ["gpt", "backup", "gpt"])
    assert [(t.model, t.deployment.id, t.provider_model) for t in chain] == [
        ("gpt", "eu", "gpt-eu"),
        ("gpt", "us", "gpt"),
        ("backup", "backup", "backup"),  # at TRIBUTARY_LLM_BASE_URL, under its own name
    ]


def test_a_deployment_that_just_ran_out_of_tries_goes_to_the_end_for_a_while() -> None:
    cooldowns = Cooldowns(30.0)
    cooldowns.cool(EU, now=T0)
    assert cooldowns.order((EU, US, BACKUP), now=T0 + 29) == (US, BACKUP, EU)
    assert cooldowns.order((EU, US, BACKUP), now=T0 + 31) == (EU, US, BACKUP)
    assert Cooldowns(0.0).order((EU, US), now=T0) == (EU, US)


def test_a_cooling_deployment_that_answers_again_is_back_in_its_place() -> None:
    cooldowns = Cooldowns(30.0)
    cooldowns.cool(EU, now=T0)
    cooldowns.cool(US, now=T0)  # both failed: an outage of everything
    cooldowns.recovered(US)
    assert cooldowns.order((EU, US), now=T0 + 1) == (US, EU)

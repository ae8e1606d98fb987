from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tributary_shared.runtime.settings import TributarySettings

MIN_UNSENT_GRACE_S = 2.0
"""Comfortably longer than a publisher takes to clear the outbox note of an event Kafka
acknowledged (``runtime.outbox``: a flush interval plus one ``ZREM``'s timeout; a unit
test holds the relation), so the sweep does not send again what was merely not yet
confirmed."""


class PlannerSettings(TributarySettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_PLANNER_", extra="ignore", frozen=True)

    max_steps: int = Field(
        default=8,
        ge=1,
        le=50,
        description="Most steps a plan may have; a request's `max_steps` may lower it, not "
        "raise it. Each step costs at least one agent LLM call.",
    )
    deadline_sweep_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between the planner's scans for workflows past their deadline, so "
        "an overdue workflow fails at most this late. Raise it to query Redis less often.",
    )
    unsent_grace_s: float = Field(
        default=10.0,
        ge=MIN_UNSENT_GRACE_S,
        description="Seconds an event written to a workflow's log may stay unconfirmed as sent "
        "before the planner's sweep publishes it (again): the publish after the write failed "
        "or its writer died. Lower it to recover sooner; a sent event is only ever repeated "
        "with its own id. Publishers confirm what Kafka acknowledged in batches, every 50 ms, "
        "so it may not go below 2 s.",
    )
    planning_lease_s: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description="Seconds a planner's lease on a workflow's planning lasts; it is renewed "
        "every third of that while the planning LLM calls run, so a second delivery of the "
        "request waits for the plan instead of planning again. A workflow whose planner died "
        "is planned by the next delivery once the lease lapses: a shorter lease recovers "
        "sooner but renews more often.",
    )

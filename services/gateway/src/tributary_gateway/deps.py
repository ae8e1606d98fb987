"""Request dependencies: the shared clients live on ``app.state`` (set in the lifespan)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from tributary_gateway.settings import GatewaySettings, TenantLimitSettings
from tributary_gateway.stream_secret import FixedStreamSecret, StreamSecret
from tributary_gateway.streams import KeyStreamSlots, StreamSlots
from tributary_shared.core.ports import (
    ApiKeyStore,
    BudgetLedger,
    CallbackStore,
    DeltaChannel,
    EventPublisher,
    LogFollower,
    RateLimiter,
    RunningWorkflows,
    WorkflowListing,
    WorkflowStore,
)
from tributary_shared.runtime.callbacks.settings import CallbackSettings
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.settings import BudgetSettings, WorkflowDefaults


@dataclass(frozen=True)
class GatewayState:
    settings: GatewaySettings
    store: WorkflowStore
    ledger: BudgetLedger
    follower: LogFollower
    streams: StreamSlots
    publisher: EventPublisher
    broker: KafkaBroker
    redis: Redis
    control: WorkflowControl
    defaults: WorkflowDefaults
    keys: ApiKeyStore
    listing: WorkflowListing
    # Quotas. Without ``running`` or ``rates`` (tests that are about something else)
    # that quota is not enforced; ``create_app`` always gives both.
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    tenant_limits: TenantLimitSettings = field(default_factory=TenantLimitSettings)
    running: RunningWorkflows | None = None
    rates: RateLimiter | None = None
    key_streams: KeyStreamSlots = field(default_factory=KeyStreamSlots)
    # What stream tokens are signed with. ``create_app`` gives the configured secret or the
    # one the replicas share in Redis; this default (one per process) is for tests.
    stream_secret: StreamSecret = field(
        default_factory=lambda: FixedStreamSecret(secrets.token_bytes(32))
    )
    deltas: DeltaChannel | None = None
    """Live LLM deltas for ``mode=tokens`` streams (None: those streams send none)."""
    # Workflow callbacks: what a request may ask for, and how far each got.
    callback_settings: CallbackSettings = field(default_factory=CallbackSettings)
    callbacks: CallbackStore | None = None


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(get_state)]

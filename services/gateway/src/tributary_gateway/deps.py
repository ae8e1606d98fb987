"""Request dependencies: the shared clients live on ``app.state`` (set in the lifespan)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from tributary_gateway.settings import GatewaySettings
from tributary_gateway.streams import StreamSlots
from tributary_shared.core.ports import (
    ApiKeyStore,
    BudgetLedger,
    EventPublisher,
    LogFollower,
    WorkflowListing,
    WorkflowStore,
)
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.settings import WorkflowDefaults


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


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(get_state)]

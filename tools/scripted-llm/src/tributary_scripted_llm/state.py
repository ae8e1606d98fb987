"""Mutable server state: rules, recorded requests, configuration, shutdown signal.

It is owned by the server's event loop; admin endpoints and chat requests all run on
that loop, so no locking is needed. The only cross-thread entry point is
:meth:`ServerState.begin_closing`, which must be called via ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from .chat_request import ChatRequest
from .models import ConfigUpdate, RecordedRequest, Rule, ServerConfig
from .ratelimit import RateLimitStats, RequestBucket
from .rules import RuleBook


async def _client_gone(request: Request) -> None:
    """Return once the client has disconnected.

    The body was already read, so the next ASGI message can only be the disconnect;
    waiting for it costs nothing while the request is pending.
    """
    while (await request.receive())["type"] != "http.disconnect":
        pass


class ServerState:
    def __init__(self, config: ServerConfig | None = None, rules: Iterable[Rule] = ()) -> None:
        self._initial_config = (config or ServerConfig()).model_copy(deep=True)
        self.config = self._initial_config.model_copy(deep=True)
        self.rules = RuleBook()
        for rule in rules:
            self.rules.add(rule)
        self.recorded: deque[RecordedRequest] = deque(maxlen=self.config.max_recorded_requests)
        self.rate_limit = self._bucket()
        self._seq = itertools.count(1)
        # Released when the server stops, so hanging and delayed requests end at once
        # instead of holding up uvicorn's graceful shutdown.
        self.closing = asyncio.Event()

    def next_seq(self) -> int:
        return next(self._seq)

    def record(self, seq: int, request: ChatRequest, rule_id: str | None) -> None:
        if self.config.max_recorded_requests == 0:
            return
        # model_construct: no re-validation of the (possibly large) message list.
        self.recorded.append(
            RecordedRequest.model_construct(
                seq=seq,
                timestamp=time.time(),
                model=request.model,
                messages=request.messages,
                tools=request.tool_names,
                response_format=request.response_format_label,
                stream=request.stream,
                rule_id=rule_id,
            )
        )

    def update_config(self, update: ConfigUpdate) -> ServerConfig:
        changes = update.model_dump(exclude_unset=True, exclude_none=True)
        self.config = self.config.model_copy(update=changes)
        if self.recorded.maxlen != self.config.max_recorded_requests:
            self.recorded = deque(self.recorded, maxlen=self.config.max_recorded_requests)
        if {"rate_limit_rpm", "rate_limit_burst"} & changes.keys():
            self.rate_limit = self._bucket()
        return self.config

    def _bucket(self) -> RequestBucket | None:
        rpm = self.config.rate_limit_rpm
        if rpm == 0:
            return None
        return RequestBucket(requests_per_minute=rpm, burst=self.config.rate_limit_burst or rpm)

    def rate_limit_stats(self) -> RateLimitStats:
        if self.rate_limit is None:
            return RateLimitStats(requests_per_minute=0, burst=0, allowed=0, refused=0)
        return self.rate_limit.stats()

    def reset(self) -> None:
        """Back to the state the server started with, minus the initial rules."""
        self.rules.clear()
        self.recorded.clear()
        self.update_config(ConfigUpdate(**self._initial_config.model_dump()))

    def begin_closing(self) -> None:
        self.closing.set()

    def reopen(self) -> None:
        """Serving again after a stop (on a new event loop): a fresh shutdown signal."""
        self.closing = asyncio.Event()

    async def wait(self, request: Request, seconds: float | None) -> bool:
        """Sleep ``seconds`` (forever when None) unless the client leaves or the server
        stops first; True when the full time elapsed."""
        if self.closing.is_set():
            return False
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self.closing.wait()),
            asyncio.ensure_future(_client_gone(request)),
        ]
        timer = asyncio.ensure_future(asyncio.sleep(seconds)) if seconds is not None else None
        if timer is not None:
            waiters.append(timer)
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return timer is not None and timer in done

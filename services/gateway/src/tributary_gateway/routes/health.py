"""Liveness and readiness for orchestrators and the local stack."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tributary_gateway import examples
from tributary_gateway.deps import State
from tributary_gateway.responses import answer, success
from tributary_gateway.schemas import Readiness

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    responses={200: success(examples.HEALTHY)},
    summary="Liveness: the process serves requests",
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        200: success(examples.READY),
        503: answer("Redis or Kafka is unreachable.", examples.NOT_READY, model=Readiness),
    },
    summary="Readiness: Redis and Kafka are reachable",
)
async def readyz(state: State) -> JSONResponse:
    redis_ok = await _succeeds(state.redis.ping())
    kafka_ok = await _succeeds(state.broker.ping(timeout=2.0))
    ok = redis_ok and kafka_ok
    body = {
        "status": "ready" if ok else "not ready",
        "redis": "ok" if redis_ok else "unreachable",
        "kafka": "ok" if kafka_ok else "unreachable",
    }
    return JSONResponse(body, status_code=200 if ok else 503)


async def _succeeds(check: Awaitable[object]) -> bool:
    try:
        async with asyncio.timeout(3.0):
            return bool(await check)
    except Exception:
        return False

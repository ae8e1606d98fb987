"""Redis clients for the services, with connection pools that queue instead of failing.

A worker runs hundreds of handlers at once; with redis-py's default pool a
burst beyond its size fails with "too many connections". A blocking pool
makes callers wait briefly for a free connection instead.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

from tributary_shared.runtime.settings import RedisSettings


def redis_client(settings: RedisSettings, *, for_blocking_reads: bool = False) -> Redis:
    """``for_blocking_reads``: no socket timeout, for XREAD BLOCK and subscriptions."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
        health_check_interval=10,
        socket_timeout=None if for_blocking_reads else 5.0,
        # Redis 7.0 does not know CLIENT SETINFO, which redis-py sends on every
        # new connection unless told not to.
        lib_name=None,
        lib_version=None,
    )
    return Redis(connection_pool=pool)


def single_connection_client(settings: RedisSettings) -> Redis:
    """One connection of its own, no socket timeout: for one long blocking reader
    whose connection id matters (it is woken with ``CLIENT UNBLOCK``)."""
    return Redis.from_url(
        settings.redis_url,
        single_connection_client=True,
        socket_timeout=None,
        health_check_interval=10,
        lib_name=None,
        lib_version=None,
    )

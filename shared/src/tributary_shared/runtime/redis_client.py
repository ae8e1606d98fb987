"""Redis clients for the services, with connection pools that queue instead of failing.

A worker runs hundreds of handlers at once; with redis-py's default pool a
burst beyond its size fails with "too many connections". A blocking pool
makes callers wait briefly for a free connection instead.

The URL says where Redis is and whether TLS is used (``rediss://``); the user,
password and certificate files may come from their own settings
(``connection_options``), so that a URL without secrets can sit beside a
password read from a mounted secret.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis

from tributary_shared.runtime.settings import RedisSettings

__all__ = ["connection_options", "redis_client", "single_connection_client"]


def connection_options(settings: RedisSettings) -> dict[str, Any]:
    """Keyword arguments, beside the URL, for a redis-py client or pool of ``settings``.

    The settings refuse a user or password given both here and in the URL (redis-py
    would silently prefer the URL's), and TLS options without a ``rediss://`` URL.
    """
    options: dict[str, Any] = {}
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if urlsplit(settings.redis_url.get_secret_value()).scheme == "rediss":
        options["ssl_cert_reqs"] = "required"
        options["ssl_check_hostname"] = settings.redis_ssl_check_hostname
        for option, path in (
            ("ssl_ca_certs", settings.redis_ssl_ca_path),
            ("ssl_certfile", settings.redis_ssl_cert_path),
            ("ssl_keyfile", settings.redis_ssl_key_path),
        ):
            if path is not None:
                options[option] = str(path)
    return options


def redis_client(settings: RedisSettings, *, for_blocking_reads: bool = False) -> Redis:
    """``for_blocking_reads``: no socket timeout, for XREAD BLOCK and subscriptions."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        **connection_options(settings),
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
        settings.redis_url.get_secret_value(),
        **connection_options(settings),
        single_connection_client=True,
        socket_timeout=None,
        health_check_interval=10,
        lib_name=None,
        lib_version=None,
    )

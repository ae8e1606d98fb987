"""What a command runs with: where its output goes and how it reaches the stores.

Commands never read the environment or open connections themselves; tests give
them a context over the in-memory twins.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tributary_shared.core.ports import ApiKeyStore
from tributary_shared.runtime.apikeys import RedisApiKeyStore
from tributary_shared.runtime.redis_client import redis_client
from tributary_shared.runtime.settings import RedisSettings, load_settings

__all__ = ["CommandContext", "redis_context"]


def _print(line: str) -> None:
    print(line, flush=True)


def _print_error(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class CommandContext:
    key_store: Callable[[], AbstractAsyncContextManager[ApiKeyStore]]
    """Opens the API key store for the length of one command."""
    where: str = "the key store"
    """Where the stores are, for error messages (no credentials in it)."""
    say: Callable[[str], None] = field(default=_print)
    warn: Callable[[str], None] = field(default=_print_error)


def redis_context() -> CommandContext:
    """The stores of the deployment named by the environment, as the services find them."""
    settings = load_settings(RedisSettings)

    @asynccontextmanager
    async def key_store() -> AsyncIterator[ApiKeyStore]:
        redis = redis_client(settings)
        try:
            yield RedisApiKeyStore(redis)
        finally:
            await redis.aclose()

    address = urlsplit(settings.redis_url.get_secret_value())  # the host only is shown
    return CommandContext(key_store=key_store, where=f"Redis at {address.hostname}:{address.port}")

"""What a command runs with: where its output goes and how it reaches the deployment.

Commands never read the environment or open connections themselves; tests give
them a context over the in-memory twins. The deployment's context reads each
part's settings only when a command opens it: the key commands need Redis, the
replay commands Kafka alone, the workflow commands the gateway's HTTP API (its
URL and key from flags or ``TRIBUTARY_URL`` / ``TRIBUTARY_API_KEY``), and none
needs the others' settings to be valid.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from rich.console import Console

from tributary_cli.replay.source import EventsRead, read_workflow_events
from tributary_client import AsyncTributary
from tributary_shared.core.ports import ApiKeyStore
from tributary_shared.runtime.apikeys import RedisApiKeyStore
from tributary_shared.runtime.kafka.security import kafka_security
from tributary_shared.runtime.redis_client import redis_client
from tributary_shared.runtime.settings import KafkaSettings, RedisSettings, load_settings

__all__ = ["CommandContext", "Unreachable", "deployment_context"]


class Unreachable(Exception):
    """A store the command needs did not answer; the message names it (never credentials)."""


def _print(line: str) -> None:
    print(line, flush=True)


def _print_error(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _no_key_store() -> AbstractAsyncContextManager[ApiKeyStore]:
    raise Unreachable("no key store is configured for this command")


async def _no_workflow_events(workflow_id: str) -> EventsRead:
    raise Unreachable("no event source is configured for this command")


def _gateway_client(base_url: str, api_key: str) -> AsyncTributary:
    return AsyncTributary(base_url, api_key)


def _stdout_terminal() -> Console | None:
    """A console on stdout when it is a terminal; None when it is a pipe or a file."""
    console = Console(highlight=False)
    return console if console.is_terminal else None


def _ask_on_stdin(prompt: str) -> str | None:
    """A line typed at the terminal; None when stdin is not one, or is closed."""
    if not sys.stdin.isatty():
        return None
    try:
        return input(prompt)
    except EOFError:
        return None


@dataclass(frozen=True)
class CommandContext:
    key_store: Callable[[], AbstractAsyncContextManager[ApiKeyStore]] = _no_key_store
    """Opens the API key store for the length of one command."""
    workflow_events: Callable[[str], Awaitable[EventsRead]] = _no_workflow_events
    """Reads one workflow's events from Kafka (never from Redis)."""
    where: str = "the key store"
    """Where the key store is, for error messages (no credentials in it)."""
    say: Callable[[str], None] = field(default=_print)
    warn: Callable[[str], None] = field(default=_print_error)
    environ: Mapping[str, str] = field(default_factory=dict)
    """Where the workflow commands find TRIBUTARY_URL and TRIBUTARY_API_KEY."""
    gateway: Callable[[str, str], AsyncTributary] = _gateway_client
    """A client of the gateway at a URL with a key; tests pass one over their transport."""
    terminal: Callable[[], Console | None] = _stdout_terminal
    """The console for live displays, or None when the output is not a terminal."""
    ask: Callable[[str], str | None] = _ask_on_stdin
    """Asks a person a question; None when nobody can answer (no terminal)."""


@asynccontextmanager
async def _redis_key_store() -> AsyncIterator[ApiKeyStore]:
    settings = load_settings(RedisSettings)
    address = urlsplit(settings.redis_url.get_secret_value())  # the host only is shown
    redis = redis_client(settings)
    try:
        yield RedisApiKeyStore(redis)
    except (RedisError, OSError) as exc:
        where = f"Redis at {address.hostname}:{address.port}"
        raise Unreachable(f"cannot reach {where}: {exc}") from None
    finally:
        await redis.aclose()


async def _kafka_workflow_events(workflow_id: str) -> EventsRead:
    settings = load_settings(KafkaSettings)
    return await read_workflow_events(
        workflow_id,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        security=kafka_security(settings),
        client_id=f"{settings.kafka_client_id}-replay",
    )


def deployment_context() -> CommandContext:
    """The deployment named by the environment, reached as the services reach it."""
    return CommandContext(
        key_store=_redis_key_store,
        workflow_events=_kafka_workflow_events,
        environ=dict(os.environ),
    )

"""Which asyncio event loop a service process runs on: uvloop where it is installed.

Every service is one process with one event loop doing all of its work (Kafka,
Redis, the model's HTTP calls, the HTTP server). uvloop (libuv underneath)
runs the same asyncio code with less CPU per callback and per socket
operation, which is what bounds the stack on a small machine
(docs/performance.md). It does not exist on Windows, and a deployment may
want the reference loop to rule uvloop out when chasing a bug, hence the
setting: ``auto`` (uvloop when importable, else asyncio), ``uvloop`` (fail at
start without it) or ``asyncio``.

The entry point reads :class:`EventLoopSettings` once, resolves it with
:func:`resolve_event_loop` and hands the result to uvicorn (``loop=``) or to
:func:`run_on_event_loop`. Choosing a loop changes no behaviour the services
rely on: aiokafka, redis-py, httpx and the openai SDK are plain asyncio code.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tributary_shared.runtime.settings import ConfigurationError, TributarySettings

__all__ = [
    "EventLoopChoice",
    "EventLoopKind",
    "EventLoopSettings",
    "event_loop_factory",
    "resolve_event_loop",
    "run_on_event_loop",
    "running_event_loop_kind",
    "uvloop_available",
]

#: What the setting accepts.
EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
#: The loop a process actually runs on; also the name uvicorn's ``loop=`` takes.
EventLoopKind = Literal["uvloop", "asyncio"]

T = TypeVar("T")


class EventLoopSettings(TributarySettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_", extra="ignore", frozen=True)
    event_loop: EventLoopChoice = Field(
        default="auto",
        description="Event loop each service process runs on. `auto` uses uvloop where it is "
        "installed (Linux and macOS; it is a dependency there) and the standard asyncio loop "
        "elsewhere; `uvloop` refuses to start without it; `asyncio` forces the standard loop, "
        "to rule uvloop out when diagnosing a problem. uvloop costs less CPU per request, "
        "message and Redis command (see docs/performance.md); behaviour is the same on both.",
    )


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def resolve_event_loop(
    choice: EventLoopChoice, *, available: Callable[[], bool] = uvloop_available
) -> EventLoopKind:
    """The loop to run for a configured ``choice``; ``uvloop`` without uvloop stops the start."""
    if choice == "asyncio":
        return "asyncio"
    if available():
        return "uvloop"
    if choice == "uvloop":
        raise ConfigurationError(
            "invalid configuration: TRIBUTARY_EVENT_LOOP: uvloop is not installed here "
            "(it does not exist on Windows); use auto or asyncio"
        )
    return "asyncio"


def event_loop_factory(kind: EventLoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes a new loop of ``kind``, for ``asyncio.Runner(loop_factory=...)``."""
    if kind == "uvloop":
        import uvloop  # only where it resolved as available

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_on_event_loop(main: Coroutine[Any, Any, T], *, kind: EventLoopKind) -> T:
    """``asyncio.run(main)``, on a loop of ``kind``."""
    with asyncio.Runner(loop_factory=event_loop_factory(kind)) as runner:
        return runner.run(main)


def running_event_loop_kind() -> EventLoopKind:
    """Which kind of loop runs the calling coroutine (for the start-up log line)."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.split(".")[0] == "uvloop" else "asyncio"

"""Named points where a test can make a process die as ``kill -9`` would: for tests only.

Some failures need a process to stop between two of its own statements: the
planner, say, after it recorded a dependent step's release in Redis and
before it published the dispatch. A signal sent from outside cannot hit such
a window reliably; a failpoint can. The code marks the place with
``hit("planner.after_release")``; a process started with that name in
``TRIBUTARY_FAILPOINTS`` exits there at once with status 137 (128 + SIGKILL),
through ``os._exit``: no ``finally`` block, no atexit handler, no commit or
flush runs, as with a real kill.

The entry point reads the setting once and passes the names to :func:`arm`;
nothing else reads the environment. Left empty (the default, and the only
value for production) no point is armed and :func:`hit` is one set lookup.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from tributary_shared.runtime.settings import TributarySettings

__all__ = [
    "KILLED_EXIT_STATUS",
    "POINTS",
    "FailpointSettings",
    "UnknownFailpointError",
    "arm",
    "armed",
    "hit",
    "parse_points",
]

log = logging.getLogger(__name__)

#: Every failpoint the code has, with where it is. A name not listed cannot be
#: armed or hit, so a misspelt one fails at once instead of never firing.
POINTS: Mapping[str, str] = MappingProxyType(
    {
        "planner.after_release": "the planner has recorded a dependent step's release and "
        "not yet published its dispatch",
        "agent-runner.after_effect": "a side-effecting tool call has returned and its result "
        "is not yet recorded in the effect ledger",
        "agent-runner.after_effect_recorded": "a side-effecting tool call's result is recorded "
        "in the effect ledger and the step's outcome is not yet",
    }
)

#: The exit status of a process killed by SIGKILL, as a shell or supervisor reports it.
KILLED_EXIT_STATUS = 137

_armed: frozenset[str] = frozenset()


class UnknownFailpointError(ValueError):
    """A failpoint name that :data:`POINTS` does not list."""


def parse_points(text: str) -> frozenset[str]:
    """The names in a comma-separated list; each must be one of :data:`POINTS`."""
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(names - POINTS.keys())
    if unknown:
        raise UnknownFailpointError(
            f"unknown failpoint(s) {', '.join(unknown)}; known: {', '.join(sorted(POINTS))}"
        )
    return names


def _points_doc() -> str:
    return "; ".join(f"`{name}`: {where}" for name, where in POINTS.items())


class FailpointSettings(TributarySettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_", extra="ignore", frozen=True)

    failpoints: str = Field(
        default="",
        description="For tests only; leave it empty in production. Comma-separated names of "
        "points in the code where the process exits at once with status 137, as if killed "
        "with `kill -9`, so that a test can crash a service inside a precise window. Known "
        f"points: {_points_doc()}. An unknown name stops the service at start.",
    )

    @field_validator("failpoints")
    @classmethod
    def _only_known_points(cls, value: str) -> str:
        parse_points(value)
        return value

    @property
    def armed(self) -> frozenset[str]:
        return parse_points(self.failpoints)


def arm(names: Iterable[str]) -> None:
    """Arm exactly ``names`` in this process (an empty iterable disarms all)."""
    global _armed
    chosen = frozenset(names)
    parse_points(",".join(chosen))
    _armed = chosen
    if chosen:
        log.warning("failpoints armed, this process will exit at: %s", ", ".join(sorted(chosen)))


def armed() -> frozenset[str]:
    return _armed


def hit(name: str) -> None:
    """Exit the process at once with status 137 if ``name`` is armed; else do nothing."""
    if name not in POINTS:
        raise UnknownFailpointError(f"unknown failpoint {name}; add it to POINTS")
    if name in _armed:
        log.critical("failpoint %s hit: exiting with status %d", name, KILLED_EXIT_STATUS)
        os._exit(KILLED_EXIT_STATUS)

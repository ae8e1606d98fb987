"""Each service runs on the event loop its setting names: uvloop under ``auto`` where it
is installed (it is a dependency on Linux), the standard loop under ``asyncio``, and a
refused start under ``uvloop`` where it is missing."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn

import tributary_gateway.__main__ as gateway_main
from tributary_shared.runtime import worker
from tributary_shared.runtime.event_loop import (
    EventLoopKind,
    resolve_event_loop,
    running_event_loop_kind,
    uvloop_available,
)
from tributary_shared.runtime.settings import ConfigurationError, HttpSettings

UVLOOP_PLATFORM = sys.platform != "win32"


@pytest.mark.parametrize(
    ("choice", "installed", "expected"),
    [
        ("auto", True, "uvloop"),
        ("auto", False, "asyncio"),
        ("uvloop", True, "uvloop"),
        ("asyncio", True, "asyncio"),
        ("asyncio", False, "asyncio"),
    ],
)
def test_the_setting_resolves_to_a_loop(choice: Any, installed: bool, expected: str) -> None:
    assert resolve_event_loop(choice, available=lambda: installed) == expected


def test_asking_for_uvloop_where_it_is_missing_stops_the_start() -> None:
    with pytest.raises(ConfigurationError, match="TRIBUTARY_EVENT_LOOP"):
        resolve_event_loop("uvloop", available=lambda: False)


@pytest.mark.skipif(not UVLOOP_PLATFORM, reason="uvloop has no Windows build")
def test_uvloop_is_installed_with_the_services() -> None:
    assert uvloop_available()


def _gateway_loop(monkeypatch: pytest.MonkeyPatch) -> EventLoopKind:
    """The loop the gateway's entry point runs its server coroutine on."""
    seen: list[EventLoopKind] = []

    async def serve() -> None:
        seen.append(running_event_loop_kind())

    monkeypatch.setattr(gateway_main, "serve", serve)
    gateway_main.main()
    return seen[0]


def _worker_loop(monkeypatch: pytest.MonkeyPatch) -> EventLoopKind:
    """The loop a worker's entry point has uvicorn make, and what that loop really is."""
    options: dict[str, Any] = {}
    monkeypatch.setattr(worker, "build_app", lambda spec: (object(), HttpSettings()))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: options.update(kw))
    worker.run_worker(SimpleNamespace(service="planner"))  # type: ignore[arg-type]
    # Made as uvicorn.run makes it; the app is never loaded for that.
    factory = uvicorn.Config("unused:app", loop=options["loop"]).get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
    finally:
        loop.close()


@pytest.mark.skipif(not UVLOOP_PLATFORM, reason="uvloop has no Windows build")
@pytest.mark.parametrize("setting", [None, "auto", "uvloop"])
def test_services_run_on_uvloop_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    if setting is None:
        monkeypatch.delenv("TRIBUTARY_EVENT_LOOP", raising=False)
    else:
        monkeypatch.setenv("TRIBUTARY_EVENT_LOOP", setting)
    assert _gateway_loop(monkeypatch) == "uvloop"
    assert _worker_loop(monkeypatch) == "uvloop"


def test_services_run_on_the_standard_loop_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_EVENT_LOOP", "asyncio")
    assert _gateway_loop(monkeypatch) == "asyncio"
    assert _worker_loop(monkeypatch) == "asyncio"

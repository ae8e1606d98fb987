"""Tool work is bounded: every call has a timeout, and CPU-heavy work leaves the event loop.

The agent-runner's event loop heartbeats Kafka and runs every other step of
the replica, so a tool may neither hang a step nor hold the loop. These tests
drive the registry's timeout with a tool that ignores cancellation, the CPU
pool with work that never ends or kills its own process, and the HTML
converter with a 10 MiB tag soup while a ticker checks the loop stays free.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from tributary_agent_runner.__main__ import builtin_tools
from tributary_agent_runner.settings import AgentSettings
from tributary_agent_runner.tools.cpu_pool import CpuPool, CpuWorkerLost, CpuWorkTimedOut
from tributary_agent_runner.tools.html_converter import HtmlConverter
from tributary_agent_runner.tools.html_text import html_to_text
from tributary_agent_runner.tools.registry import Tool, ToolError, ToolRegistry, ToolTimedOut

# --- the registry's timeout -------------------------------------------------------------


class NoArgs(BaseModel):
    pass


def stubborn_tool(release: asyncio.Event, *, timeout_s: float) -> Tool[NoArgs]:
    """A tool that swallows every cancellation and ends only when released."""

    async def run(_: NoArgs) -> str:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
        return "finished late"

    return Tool("stubborn", "ignores cancellation", NoArgs, run, timeout_s=timeout_s)


async def test_a_tool_that_ignores_cancellation_still_times_out() -> None:
    release = asyncio.Event()
    # Without a hard timeout the call would end only when released, and return its result.
    asyncio.get_running_loop().call_later(3.0, release.set)
    try:
        with pytest.raises(ToolTimedOut, match=r"stubborn timed out after 0\.1s"):
            await stubborn_tool(release, timeout_s=0.1).invoke("{}")
    finally:
        release.set()
        await asyncio.sleep(0.01)  # let the abandoned call end


def sleeper(name: str, *, timeout_s: float) -> Tool[NoArgs]:
    async def run(_: NoArgs) -> str:
        await asyncio.sleep(30)
        return "woke"

    return Tool(name, "sleeps", NoArgs, run, timeout_s=timeout_s)


async def test_timeouts_by_name_override_each_tools_own() -> None:
    registry = ToolRegistry([sleeper("slow", timeout_s=30)], timeouts={"slow": 0.05, "mcp": 0.05})
    registry.register(sleeper("mcp", timeout_s=30))  # registered later, as MCP tools are
    for name in ("slow", "mcp"):
        assert registry.get(name).timeout_s == 0.05
        with pytest.raises(ToolTimedOut, match=rf"{name} timed out after 0\.05s"):
            await registry.get(name).invoke("{}")


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, float("inf"), float("nan")])
def test_every_tool_has_a_real_timeout(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        sleeper("t", timeout_s=timeout_s)
    with pytest.raises(ValueError, match="timeout"):
        ToolRegistry(timeouts={"t": timeout_s})


def test_the_agent_runner_settings_set_tool_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_AGENT_TOOL_TIMEOUTS", '{"calculator": 0.5, "fetch_url": 40}')
    settings = AgentSettings()
    assert settings.tool_timeouts == {"calculator": 0.5, "fetch_url": 40}
    tools = builtin_tools(settings)
    assert tools.get("calculator").timeout_s == 0.5
    assert tools.get("fetch_url").timeout_s == 40
    with pytest.raises(ValueError, match="tool_timeouts"):
        AgentSettings(tool_timeouts={"calculator": 0})


# --- the CPU pool ----------------------------------------------------------------------


@pytest.fixture
async def pool() -> AsyncIterator[CpuPool]:
    pool = CpuPool(processes=2)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
async def one_worker() -> AsyncIterator[CpuPool]:
    pool = CpuPool(processes=1)
    try:
        yield pool
    finally:
        pool.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def until_dead(pid: int) -> bool:
    for _ in range(100):
        if not alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_work_runs_in_another_process(pool: CpuPool) -> None:
    assert await pool.run(sum, [1, 2, 3], timeout_s=10) == 6
    assert await pool.run(os.getpid, timeout_s=10) != os.getpid()


async def test_work_past_its_limit_is_killed_and_its_worker_replaced(one_worker: CpuPool) -> None:
    pid = await one_worker.run(os.getpid, timeout_s=10)
    with pytest.raises(CpuWorkTimedOut, match=r"longer than 0\.2s"):
        await one_worker.run(time.sleep, 30, timeout_s=0.2)
    assert await until_dead(pid)
    replacement = await one_worker.run(os.getpid, timeout_s=10)
    assert replacement != pid


async def test_one_call_past_its_limit_does_not_disturb_another(pool: CpuPool) -> None:
    stuck = pool.run(time.sleep, 30, timeout_s=0.3)
    fine = pool.run(time.sleep, 0.6, timeout_s=10)
    results = await asyncio.gather(stuck, fine, return_exceptions=True)
    assert isinstance(results[0], CpuWorkTimedOut)
    assert results[1] is None


async def test_a_caller_that_gives_up_has_its_worker_killed(one_worker: CpuPool) -> None:
    pid = await one_worker.run(os.getpid, timeout_s=10)
    call = asyncio.create_task(one_worker.run(time.sleep, 30, timeout_s=60))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await until_dead(pid)


async def test_errors_of_the_work_reach_the_caller(pool: CpuPool) -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        await pool.run(int, "not a number", timeout_s=10)


async def test_a_worker_that_dies_is_reported_and_replaced(one_worker: CpuPool) -> None:
    with pytest.raises(CpuWorkerLost):
        await one_worker.run(os._exit, 3, timeout_s=10)
    assert await one_worker.run(sum, [2, 2], timeout_s=10) == 4


async def test_a_closed_pool_refuses_work() -> None:
    pool = CpuPool(processes=1)
    pool.close()
    with pytest.raises(CpuWorkerLost, match="closed"):
        await pool.run(sum, [1], timeout_s=1)


# --- HTML to text -----------------------------------------------------------------------

TEN_MIB_TAG_SOUP = "<div><b><i>x</i></b><span class=a>" * (10 * 1024 * 1024 // 34)


class Ticker:
    """Ticks every 10 ms on the event loop and records the longest gap between ticks."""

    def __init__(self) -> None:
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_a_10_mib_tag_soup_neither_blocks_the_loop_nor_outruns_its_limit(
    pool: CpuPool,
) -> None:
    assert len(TEN_MIB_TAG_SOUP) >= 10 * 1024 * 1024 - 34
    # No input cap here: the whole soup is parsed (about 20 s of work) under a 0.5 s limit.
    convert = HtmlConverter(pool, timeout_s=0.5, max_chars=len(TEN_MIB_TAG_SOUP))
    started = time.monotonic()
    with Ticker() as ticker, pytest.raises(ToolError, match=r"within 0\.5s"):
        await convert(TEN_MIB_TAG_SOUP)
    # Generous margins: on the event loop the parse would hold it for many seconds.
    assert time.monotonic() - started < 5.0
    assert ticker.longest_gap < 0.3


async def test_html_is_cut_to_its_limit_before_it_is_parsed(pool: CpuPool) -> None:
    html = "<p>start</p>" + TEN_MIB_TAG_SOUP + "<p>END</p>"
    page = await HtmlConverter(pool, timeout_s=10, max_chars=64 * 1024)(html)
    assert page.truncated
    assert page.text.startswith("start")
    assert "END" not in page.text


async def test_the_converter_gives_what_the_parser_gives(pool: CpuPool) -> None:
    html = "<title>T</title><h1>Head</h1><p>one <b>two</b></p><script>x()</script>"
    page = await HtmlConverter(pool)(html)
    assert page == html_to_text(html)
    assert not page.truncated

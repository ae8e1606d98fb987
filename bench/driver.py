"""Open-loop load: workflows arrive on a schedule that ignores completions.

Each arrival POSTs /v1/workflows and then waits for the workflow's end, either
on its SSE stream (``watch="sse"``: the time the terminal event reaches the
client) or by reading the workflow's state in Redis (``watch="redis"``: the
terminal status' ``updated_at``, i.e. the moment a GET would first show it;
used when thousands of workflows run at once and one SSE connection each would
measure the gateway's SSE fan-out rather than the orchestration).

With several gateway replicas, arrivals take turns among them (as a
round-robin load balancer would send them), and each workflow's SSE stream is
read from the gateway that accepted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx
from redis.asyncio import Redis

from bench import procstat
from tributary_devstack.sse import SseParser
from tributary_shared.core.access import DEFAULT_SCOPES, issue_key
from tributary_shared.core.events import utc_now
from tributary_shared.core.keys import WorkflowKeys
from tributary_shared.runtime.apikeys import RedisApiKeyStore

STANDARD_TASK = "compute 1+1; compute 2+2; compute 3+3"
TERMINAL_EVENTS = {
    "workflow.completed": "completed",
    "workflow.failed": "failed",
    "workflow.cancelled": "cancelled",
}
TERMINAL_STATUSES = frozenset(TERMINAL_EVENTS.values())
Watch = Literal["sse", "redis"]


@dataclass
class Sample:
    """One workflow as the client saw it. Times: monotonic and wall clock seconds."""

    index: int
    scheduled_mono: float
    post_mono: float = 0.0
    post_wall: float = 0.0
    accepted_mono: float | None = None
    end_mono: float | None = None
    end_wall: float | None = None
    workflow_id: str | None = None
    status: str | None = None
    error: str | None = None

    @property
    def ended(self) -> bool:
        return self.status is not None or self.error is not None

    def e2e(self) -> float | None:
        """Seconds from sending the POST to the workflow's end, as watched."""
        if self.end_mono is not None:
            return self.end_mono - self.post_mono
        if self.end_wall is not None:
            return self.end_wall - self.post_wall
        return None


@dataclass
class Driver:
    gateway_urls: Sequence[str]
    redis_url: str
    watch: Watch = "sse"
    task: str = STANDARD_TASK
    poll_s: float = 0.25
    post_timeout_s: float = 60.0
    samples: list[Sample] = field(default_factory=list)
    _clients: list[httpx.AsyncClient] = field(default_factory=list)
    _redis: Redis | None = None
    _pending: dict[str, Sample] = field(default_factory=dict)
    _waiters: dict[str, asyncio.Event] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _watcher: asyncio.Task[None] | None = None
    _started: int = 0
    _ended: int = 0
    _key_id: str | None = None

    async def __aenter__(self) -> Driver:
        self._redis = Redis.from_url(self.redis_url)
        # The gateway answers nothing without an API key: the run issues its own.
        issued = issue_key(
            tenant_id="bench", scopes=DEFAULT_SCOPES, created_at=utc_now(), label="bench run"
        )
        await RedisApiKeyStore(self._redis).add(issued.record)
        self._key_id = issued.record.key_id
        if not self.gateway_urls:
            raise ValueError("the driver needs one gateway URL at least")
        self._clients = [
            httpx.AsyncClient(
                base_url=url,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=500),
                timeout=httpx.Timeout(self.post_timeout_s),
                headers={"Authorization": f"Bearer {issued.key}"},
            )
            for url in self.gateway_urls
        ]
        if self.watch == "redis":
            self._watcher = asyncio.create_task(self._watch_redis(), name="redis-watch")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for client in self._clients:
            await client.aclose()
        if self._redis is not None:
            if self._key_id is not None:
                await RedisApiKeyStore(self._redis).revoke(self._key_id)
            await self._redis.aclose()

    def client_for(self, sample: Sample) -> httpx.AsyncClient:
        """The gateway that takes this arrival: each in turn."""
        assert self._clients, "use the driver inside ``async with``"
        return self._clients[sample.index % len(self._clients)]

    @property
    def in_flight(self) -> int:
        """Workflows sent (POST issued) and not yet seen ending."""
        return self._started - self._ended

    @property
    def ended(self) -> int:
        return self._ended

    # -- arrivals ---------------------------------------------------------------

    async def open_loop(
        self,
        rate: float,
        *,
        duration_s: float | None = None,
        count: int | None = None,
        poisson: bool = True,
        seed: int = 1,
    ) -> list[Sample]:
        """Start workflows at ``rate`` per second (Poisson or evenly spaced) until
        ``duration_s`` has passed or ``count`` were started; returns their samples
        (still running ones included) without waiting for them to end."""
        if duration_s is None and count is None:
            raise ValueError("give duration_s or count")
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()
        start = loop.time()
        offset = 0.0
        batch: list[Sample] = []
        while True:
            offset += rng.expovariate(rate) if poisson else 1.0 / rate
            if duration_s is not None and offset > duration_s:
                break
            if count is not None and len(batch) >= count:
                break
            due = start + offset
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sample = Sample(index=len(self.samples), scheduled_mono=due)
            self.samples.append(sample)
            batch.append(sample)
            self._spawn(self._one(sample))
        return batch

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def wrapped() -> None:
            await coro

        task = asyncio.create_task(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, samples: list[Sample], timeout_s: float) -> bool:
        """Wait until every sample ended; False on time-out."""
        deadline = time.monotonic() + timeout_s
        while any(not s.ended for s in samples):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    # -- one workflow -------------------------------------------------------------

    async def _one(self, sample: Sample) -> None:
        self._started += 1
        try:
            sample.post_mono = time.monotonic()
            sample.post_wall = time.time()
            client = self.client_for(sample)
            response = await client.post("/v1/workflows", json={"task": self.task})
            sample.accepted_mono = time.monotonic()
            if response.status_code != 202:
                sample.error = f"POST {response.status_code}: {response.text[:200]}"
                return
            workflow_id = str(response.json()["workflow_id"])
            sample.workflow_id = workflow_id
            if self.watch == "sse":
                await self._follow_sse(client, sample, workflow_id)
            else:
                ended = asyncio.Event()
                self._pending[workflow_id] = sample
                self._waiters[workflow_id] = ended
                await ended.wait()
        except asyncio.CancelledError:
            sample.error = sample.error or "cancelled by the harness"
            raise
        except Exception as exc:
            sample.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ended += 1

    async def _follow_sse(
        self, client: httpx.AsyncClient, sample: Sample, workflow_id: str
    ) -> None:
        parser = SseParser()
        url = f"/v1/workflows/{workflow_id}/events"
        timeout = httpx.Timeout(self.post_timeout_s, read=None)
        async with client.stream("GET", url, timeout=timeout) as response:
            if response.status_code != 200:
                sample.error = f"SSE {response.status_code}"
                return
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is not None and event.event in TERMINAL_EVENTS:
                    sample.end_mono = time.monotonic()
                    sample.status = TERMINAL_EVENTS[event.event]
                    return
        sample.error = "SSE stream ended without a terminal event"

    async def _watch_redis(self) -> None:
        assert self._redis is not None
        redis = self._redis
        while True:
            await asyncio.sleep(self.poll_s)
            ids = list(self._pending)
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                async with redis.pipeline(transaction=False) as pipe:
                    for workflow_id in chunk:
                        pipe.hmget(WorkflowKeys(workflow_id).workflow, ["status", "updated_at"])
                    rows: list[Any] = await pipe.execute()
                for workflow_id, (status, updated_at) in zip(chunk, rows, strict=True):
                    text = status.decode() if isinstance(status, bytes) else status
                    if text not in TERMINAL_STATUSES:
                        continue
                    sample = self._pending.pop(workflow_id)
                    sample.status = text
                    sample.end_wall = datetime.fromisoformat(updated_at.decode()).timestamp()
                    self._waiters.pop(workflow_id).set()


@dataclass
class Monitor:
    """Samples CPU, RSS, Redis memory and in-flight counts at a fixed interval."""

    pids: Mapping[str, int]
    redis_url: str
    in_flight: Callable[[], int]
    health_ports: Mapping[str, int] = field(default_factory=dict)
    interval_s: float = 1.0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def snapshot(self) -> dict[str, Any]:
        procs = procstat.sample_all(self.pids)
        redis = Redis.from_url(self.redis_url)
        try:
            memory: dict[str, Any] = await redis.info("memory")
        finally:
            await redis.aclose()
        row: dict[str, Any] = {
            "wall": time.time(),
            "mono": time.monotonic(),
            "in_flight": self.in_flight(),
            "machine_cpu_s": procstat.machine_cpu_s(),
            "cpu_s": {name: p.cpu_s for name, p in procs.items()},
            "rss": {name: p.rss_bytes for name, p in procs.items()},
            "redis_used_memory": int(memory["used_memory"]),
        }
        if self.health_ports:
            row["consumer_in_flight"] = await self._consumer_in_flight()
        return row

    async def _consumer_in_flight(self) -> dict[str, int]:
        out: dict[str, int] = {}
        async with httpx.AsyncClient(timeout=5) as client:
            for name, port in self.health_ports.items():
                try:
                    body = (await client.get(f"http://127.0.0.1:{port}/health")).json()
                    out[name] = int(body.get("in_flight", -1))
                except (httpx.HTTPError, ValueError, json.JSONDecodeError):
                    out[name] = -1
        return out

    async def _run(self) -> None:
        while True:
            self.timeline.append(await self.snapshot())
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

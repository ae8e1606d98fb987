"""CPU-heavy tool work in worker processes, each call under a hard time limit.

The event loop heartbeats Kafka and runs every other step of the replica; a
tool that computes on it for seconds (the text of a hostile HTML page takes
about 2 s per MiB) stalls all of them and, past the session timeout, costs the
replica its partitions. A thread would not help: the work holds the GIL, and a
thread cannot be stopped.

So the work runs in a few worker processes (:mod:`.cpu_worker`), one call per
process at a time. A call that runs past its limit, or whose caller gives up,
has its process killed and replaced, so the limit is hard and no other call is
disturbed. (``concurrent.futures.ProcessPoolExecutor`` cannot kill one worker;
Python 3.14 adds ``kill_workers``, which stops all of them.) Each call is
driven by a thread of the pool that blocks on the worker's pipes; the event
loop only awaits. The time limit counts from when the call reaches a worker:
waiting for a free one is bounded by the caller's own timeout.

Errors of :meth:`CpuPool.run`::

    CpuWorkTimedOut   the call ran past its limit; its worker was killed
    CpuWorkerLost     the worker died (killed from outside, out of memory),
                      could not start, or the pool is closed
    anything else     raised by the function, re-raised as it was
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import pickle
import selectors
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import IO, TypeVar, cast

from .cpu_worker import read_frame, write_frame

__all__ = [
    "DEFAULT_STARTUP_TIMEOUT_S",
    "CpuPool",
    "CpuWorkTimedOut",
    "CpuWorkerLost",
    "shared_cpu_pool",
]

R = TypeVar("R")

WORKER_COMMAND = (sys.executable, "-m", "tributary_agent_runner.tools.cpu_worker")
#: A worker's start (a Python interpreter and its imports) is not counted in a call's limit.
DEFAULT_STARTUP_TIMEOUT_S = 30.0
# How soon a worker is killed after its caller gave up.
_ABANDON_POLL_S = 0.05
# A killed process is reaped within this; a process stuck in the kernel is left to init.
_REAP_S = 5.0


class CpuWorkTimedOut(Exception):
    """The call ran past its time limit; the worker running it was killed."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"the work took longer than {limit_s:g}s")
        self.limit_s = limit_s


class CpuWorkerLost(Exception):
    """The worker stopped before answering, could not start, or the pool is closed."""


class _Abandoned(Exception):
    """The caller stopped waiting; nobody sees this, the worker is just killed."""


class _Worker:
    """One worker process, driven synchronously from one pool thread at a time."""

    def __init__(
        self, command: Sequence[str], startup_timeout_s: float, abandoned: threading.Event
    ) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._requests: IO[bytes] = self._process.stdin
        self._replies: IO[bytes] = self._process.stdout
        try:
            if self._receive(startup_timeout_s, abandoned) != b"":
                raise CpuWorkerLost("the worker process answered before it was asked")
        except CpuWorkTimedOut:
            self.stop()
            raise CpuWorkerLost(
                f"the worker process did not start within {startup_timeout_s:g}s"
            ) from None
        except BaseException:
            self.stop()
            raise

    def call(self, request: bytes, timeout_s: float, abandoned: threading.Event) -> bytes:
        try:
            write_frame(self._requests, request)
        except OSError:
            raise CpuWorkerLost("the worker process stopped") from None
        return self._receive(timeout_s, abandoned)

    def _receive(self, timeout_s: float, abandoned: threading.Event) -> bytes:
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(self._replies, selectors.EVENT_READ)
            while not selector.select(min(_ABANDON_POLL_S, max(0.0, deadline - time.monotonic()))):
                if abandoned.is_set():
                    raise _Abandoned
                if time.monotonic() >= deadline:
                    raise CpuWorkTimedOut(timeout_s)
        # The reply has begun; the worker writes it whole at once.
        frame = read_frame(self._replies)
        if frame is None:
            raise CpuWorkerLost("the worker process stopped before it answered")
        return frame

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(_REAP_S)
        for stream in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                stream.close()


class CpuPool:
    """At most ``processes`` worker processes, started when first needed and kept."""

    def __init__(
        self,
        *,
        processes: int = 2,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
        command: Sequence[str] = WORKER_COMMAND,
    ) -> None:
        if processes < 1:
            raise ValueError("a CPU pool needs at least one process")
        self._command = tuple(command)
        self._startup_timeout_s = startup_timeout_s
        # One thread per process: a call holds its worker for its whole run.
        self._threads = ThreadPoolExecutor(max_workers=processes, thread_name_prefix="cpu-pool")
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = threading.Event()
        # Workers are killed when the pool is closed, collected, or at exit;
        # they would also end by themselves once their stdin closes.
        self._finalizer = weakref.finalize(self, _stop_all, self._lock, self._idle, self._busy)

    async def run(self, function: Callable[..., R], *args: object, timeout_s: float) -> R:
        """``function(*args)`` in a worker process, killed after ``timeout_s`` seconds.

        ``function`` and ``args`` are pickled: the function must be importable
        by name (a module-level function). Cancelling the caller kills the
        worker too, within a few tens of milliseconds.
        """
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError("timeout_s must be positive and finite")
        abandoned = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(
                self._threads, self._call, function, args, timeout_s, abandoned
            )
        except RuntimeError:  # the thread pool is shut down
            raise CpuWorkerLost("the CPU pool is closed") from None
        try:
            return await future
        except asyncio.CancelledError:
            abandoned.set()
            raise

    def close(self) -> None:
        """Kill every worker; calls in progress end with CpuWorkerLost."""
        with self._lock:
            self._closed.set()
        self._finalizer()
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- in a pool thread ------------------------------------------------------

    def _call(
        self,
        function: Callable[..., R],
        args: tuple[object, ...],
        timeout_s: float,
        abandoned: threading.Event,
    ) -> R:
        request = pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL)
        worker = self._checkout(abandoned)
        try:
            reply = worker.call(request, timeout_s, abandoned)
        except BaseException:
            self._discard(worker)
            raise
        self._checkin(worker)
        # Written by our own worker process, so as safe to unpickle as an import.
        ok, value = cast(tuple[bool, object], pickle.loads(reply))  # noqa: S301
        if ok:
            return cast(R, value)
        if isinstance(value, BaseException):
            raise value
        raise CpuWorkerLost(f"the worker process answered {value!r}")

    def _checkout(self, abandoned: threading.Event) -> _Worker:
        with self._lock:
            if self._closed.is_set():
                raise CpuWorkerLost("the CPU pool is closed")
            if self._idle:
                worker = self._idle.pop()
                self._busy.add(worker)
                return worker
        worker = _Worker(self._command, self._startup_timeout_s, abandoned)
        with self._lock:
            if not self._closed.is_set():
                self._busy.add(worker)
                return worker
        worker.stop()
        raise CpuWorkerLost("the CPU pool is closed")

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if not self._closed.is_set():
                self._idle.append(worker)
                return
        worker.stop()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.stop()


def _stop_all(lock: threading.Lock, idle: list[_Worker], busy: set[_Worker]) -> None:
    with lock:
        workers = [*idle, *busy]
        idle.clear()
    for worker in workers:
        worker.stop()


@cache
def shared_cpu_pool() -> CpuPool:
    """A process-wide pool with default settings, for tools built without one."""
    return CpuPool()

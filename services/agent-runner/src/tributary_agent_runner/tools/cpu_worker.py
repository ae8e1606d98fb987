"""The worker process of :mod:`.cpu_pool`: runs one function call at a time.

Started as ``python -m tributary_agent_runner.tools.cpu_worker`` rather than
through :mod:`multiprocessing`, whose ``spawn`` start would import the
service's whole ``__main__`` (Kafka, Redis, model clients) into every worker
and whose ``fork`` would copy a threaded process. This module imports only the
standard library; a call imports the module of the function it names.

The protocol runs over the process's stdin (requests) and stdout (replies).
Each frame is an 8-byte big-endian length followed by that many bytes of
pickle. The worker first sends an empty frame to say it is ready; each request
``(function, args)`` is answered by ``(True, result)`` or ``(False, exception)``.
The end of stdin (the parent closed it, or died) ends the worker. Both ends
are this program, so unpickling is as safe as importing.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from typing import IO

__all__ = ["read_frame", "serve", "write_frame"]

_HEADER = struct.Struct("!Q")


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload, or None at the end of the stream (even mid-frame)."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    return _read_exactly(stream, size)


def _reply(ok: bool, value: object) -> bytes:
    try:
        return pickle.dumps((ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        # An unpicklable result or exception still gets an answer the parent can raise.
        return pickle.dumps((False, RuntimeError(repr(value)[:500])))


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """Answer requests until ``requests`` ends."""
    write_frame(replies, b"")
    while (frame := read_frame(requests)) is not None:
        function, args = pickle.loads(frame)  # noqa: S301 - sent by our own parent process
        try:
            reply = _reply(True, function(*args))
        except Exception as exc:
            reply = _reply(False, exc)
        write_frame(replies, reply)


def main() -> None:
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Whatever the work prints goes to stderr, never into the reply stream.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()

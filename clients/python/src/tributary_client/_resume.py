"""Following a workflow across connections: what to resend, what to skip, when to give up.

The sync and async clients run the same loop around this state: connect with
``request()``, hand every event to ``accept()``, and on a drop or a 429/5xx ask
``retry_delay()`` how long to wait (it raises once the retries are spent).
"""

from __future__ import annotations

import re

import httpx

from tributary_client import _requests
from tributary_client._errors import APIError, ConnectionError, TributaryError
from tributary_client._events import WorkflowEvent
from tributary_client._models import StreamMode
from tributary_client._retry import RetryPolicy

__all__ = ["Resumption", "as_connection_error"]

_STREAM_ID = re.compile(r"^(\d+)-(\d+)$")


def _position(event_id: str | None) -> tuple[int, int] | None:
    match = _STREAM_ID.match(event_id or "")
    return (int(match[1]), int(match[2])) if match else None


def as_connection_error(error: httpx.TransportError) -> ConnectionError:
    return ConnectionError(
        f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    )


class StreamEnded(TributaryError):
    """The server closed the stream before the workflow's last event (it resumes)."""

    code = "stream_ended"


class Resumption:
    """One ``stream()``'s position and its count of reconnections without progress."""

    def __init__(
        self,
        workflow_id: str,
        *,
        last_event_id: str | None,
        calls: bool,
        policy: RetryPolicy,
        mode: StreamMode | str = StreamMode.LIFECYCLE,
    ) -> None:
        self.workflow_id = workflow_id
        self.last_event_id = last_event_id
        self.calls = calls
        self.mode = StreamMode(mode)
        self.policy = policy
        self.retries = 0
        self.finished = False

    def request(self) -> _requests.Request:
        """The next connection: after the last event seen, if any."""
        return _requests.events(
            self.workflow_id, last_event_id=self.last_event_id, calls=self.calls, mode=self.mode
        )

    def accept(self, event: WorkflowEvent) -> bool:
        """Record an event; False for one at or before the last seen (never yield it twice).

        A live event (a token delta) has no position: it moves none."""
        if event.live:
            return True
        seen, new = _position(self.last_event_id), _position(event.id)
        if seen is not None and new is not None and new <= seen:
            return False
        if event.id:
            self.last_event_id = event.id
        self.retries = 0
        self.finished = event.terminal
        return True

    def retry_delay(self, error: TributaryError) -> float:
        """Seconds to wait before reconnecting after ``error``; raises it if it is final."""
        if isinstance(error, APIError) and not _retryable(error.status):
            raise error
        self.retries += 1
        if self.retries > self.policy.max_retries:
            raise error
        return self.policy.delay(self.retries, retry_after=error.retry_after)

    def ended_early(self) -> StreamEnded:
        return StreamEnded(
            f"the stream of {self.workflow_id} ended after {self.last_event_id or 'no event'} "
            "before the workflow's last event"
        )


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500

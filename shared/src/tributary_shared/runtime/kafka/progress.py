"""What a consumer is handling right now: handlers, and the workflows and steps they are about.

Exported as ``handlers_in_progress{service, kind}``: ``event`` counts handlers
running, ``workflow`` and ``step`` the distinct workflows and steps among them
(one workflow may have several steps' events in hand at once). A scrape that
finds them at 0 after work finished shows nothing is stuck in this process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar, TypeVar

from tributary_shared.core.events import AnyEvent, StepDispatched
from tributary_shared.runtime.metrics import HANDLERS_IN_PROGRESS

__all__ = ["HandlersInProgress", "step_of"]

_K = TypeVar("_K")


def step_of(event: AnyEvent) -> str | None:
    """The step an event is about, if any (a dispatch carries its step whole)."""
    if isinstance(event, StepDispatched):
        return event.step.step_id
    step_id = getattr(event, "step_id", None)
    return step_id if isinstance(step_id, str) else None


class HandlersInProgress:
    """One per service and process (``of``): the gauges count distinct workflows, so
    every consumer of the service in the process must count in the same place."""

    _of_service: ClassVar[dict[str, HandlersInProgress]] = {}

    @classmethod
    def of(cls, service: str) -> HandlersInProgress:
        if service not in cls._of_service:
            cls._of_service[service] = cls(service)
        return cls._of_service[service]

    def __init__(self, service: str) -> None:
        self._events = HANDLERS_IN_PROGRESS.labels(service, "event")
        self._workflows_gauge = HANDLERS_IN_PROGRESS.labels(service, "workflow")
        self._steps_gauge = HANDLERS_IN_PROGRESS.labels(service, "step")
        self._workflows: Counter[str] = Counter()
        self._steps: Counter[tuple[str, str]] = Counter()

    @contextmanager
    def handling(self, event: AnyEvent) -> Iterator[None]:
        step_id = step_of(event)
        step = (event.workflow_id, step_id) if step_id is not None else None
        self._events.inc()
        self._workflows[event.workflow_id] += 1
        if step is not None:
            self._steps[step] += 1
        self._publish()
        try:
            yield
        finally:
            self._events.dec()
            _release(self._workflows, event.workflow_id)
            if step is not None:
                _release(self._steps, step)
            self._publish()

    def _publish(self) -> None:
        self._workflows_gauge.set(len(self._workflows))
        self._steps_gauge.set(len(self._steps))


def _release(held: Counter[_K], key: _K) -> None:
    held[key] -= 1
    if held[key] <= 0:
        del held[key]

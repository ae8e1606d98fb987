"""A stand-in for callback receivers: answers as scripted and keeps every request sent."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tributary_shared.runtime.callbacks.sender import SendResult


@dataclass(frozen=True)
class SentCallback:
    url: str
    body: bytes
    secret: bytes
    delivery_id: str


@dataclass
class ScriptedReceiver:
    """Answers each send with the next scripted status (``None``: no answer), then 200."""

    answers: deque[int | None] = field(default_factory=deque)
    sent: list[SentCallback] = field(default_factory=list)

    def answer(self, *statuses: int | None) -> None:
        self.answers.extend(statuses)

    async def send(self, url: str, body: bytes, *, secret: bytes, delivery_id: str) -> SendResult:
        self.sent.append(SentCallback(url, body, secret, delivery_id))
        status = self.answers.popleft() if self.answers else 200
        if status is None:
            return SendResult(None, "request failed (ConnectError)", 3)
        return SendResult(status, None, 3)

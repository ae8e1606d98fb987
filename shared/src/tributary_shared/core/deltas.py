"""Live text of LLM calls as it streams in: the ``llm.delta`` event, and its redaction.

An ``llm.delta`` is ephemeral: it goes to whoever follows the workflow's tokens
right now (an event stream with ``mode=tokens``) and is never written to the
workflow's log, so it has no log position and is not replayed on resume. The
complete message of the call is in the log as before (``step.completed``,
``workflow.completed``, and the ``llm.called`` record when calls are recorded).

Deltas are redacted as call records are. A secret can arrive split over
several pieces, so ``RedactedText`` holds back the last two words of the text
it has (at most ``HOLD_MAX_CHARS``) and releases the rest once redacted: a key,
or a ``Bearer``/``password:`` and its value, is masked before any of it leaves.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from tributary_shared.core.events import Model

__all__ = ["DELTA_ROLES", "HOLD_MAX_CHARS", "DeltaRole", "LLMDelta", "RedactedText"]

DeltaRole = Literal["agent", "synthesizer"]
DELTA_ROLES: frozenset[str] = frozenset({"agent", "synthesizer"})
"""The roles whose calls stream deltas: the planner's answer is a plan (JSON), not prose."""

HOLD_MAX_CHARS = 256
"""The most text held back at the end while it might be the start of a secret."""

_WORD = re.compile(r"\S+")


class LLMDelta(Model):
    """A piece of an LLM call's text, as the model streams it (ephemeral: never logged).

    The pieces of one call (same ``step_id``, ``attempt``, ``call``), joined in
    ``seq`` order, are its message as the log holds it once the call ends. A
    call tried again (a failed HTTP try) starts its text over: a delta with a
    higher ``try_number`` than the ones before it restarts the message.
    """

    type: Literal["llm.delta"] = "llm.delta"
    workflow_id: str
    step_id: str | None = Field(default=None, description="The step; null for the synthesis.")
    role: DeltaRole = Field(description="Who made the call: agent or synthesizer.")
    attempt: int = Field(default=1, ge=1, description="The step's attempt (1 for the synthesis).")
    iteration: int | None = Field(
        default=None, description="The agent loop's iteration the call belongs to."
    )
    call: int = Field(
        ge=1,
        description="1, 2, ... the scope's LLM calls (the `sequence` of its `llm.called` record).",
    )
    try_number: int = Field(
        default=1, ge=1, description="The call's HTTP try; a new one restarts the text."
    )
    seq: int = Field(ge=0, description="0, 1, ... the call's deltas in order.")
    text: str = Field(description="The next piece of the message's text, redacted.")


class RedactedText:
    """The text of one streamed answer, released a redacted piece at a time.

    ``add`` takes the pieces as they arrive; ``release`` returns what can go out
    now. Released pieces, joined, are always a prefix of ``redact`` of the whole
    text, and once ``release(final=True)`` ran, all of it. Should masking a
    secret reach back into text already released (a secret longer than what is
    held back), nothing more of this answer is released: a gap, never a leak.
    """

    def __init__(self, redact: Callable[[str], str], *, hold_max_chars: int = HOLD_MAX_CHARS):
        self._redact = redact
        self._hold_max_chars = hold_max_chars
        self._raw: list[str] = []
        self._released = ""
        self._stuck = False

    def add(self, text: str) -> None:
        self._raw.append(text)

    def release(self, *, final: bool = False) -> str:
        if self._stuck or not self._raw:
            return ""
        raw = "".join(self._raw)
        self._raw = [raw]
        cut = len(raw) if final else _safe_cut(raw, self._hold_max_chars)
        redacted = self._redact(raw[:cut])
        if not redacted.startswith(self._released):
            self._stuck = True
            return ""
        piece = redacted[len(self._released) :]
        self._released = redacted
        return piece


def _safe_cut(raw: str, hold_max_chars: int) -> int:
    """Where the text may be cut now: before its last two words, at most so far back."""
    window = max(0, len(raw) - hold_max_chars)
    starts = [match.start() for match in _WORD.finditer(raw, window)]
    if len(starts) >= 2:
        return starts[-2]
    return window

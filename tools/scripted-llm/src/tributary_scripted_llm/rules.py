"""Scripted rules: matching requests and handing out each rule's responses in order.

The rule book lives on the server's event loop and is only touched from it, so
"find the first matching rule and take its next response" is atomic without a lock:
concurrent requests each get their own response, in arrival order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .chat_request import ChatRequest
from .models import Match, Rule, RuleStatus, ScriptedResponse


def matches(match: Match, request: ChatRequest) -> bool:
    """Whether every condition given in ``match`` holds for ``request``."""
    if match.model is not None and match.model != request.model:
        return False
    if match.has_tools is not None and match.has_tools != request.has_tools:
        return False
    if match.has_tool_result is not None and match.has_tool_result != request.has_tool_result:
        return False
    if match.schema_name is not None and match.schema_name != request.schema_name:
        return False
    if match.last_user_contains is not None and (
        match.last_user_contains not in request.last_user_text
    ):
        return False
    # Scanning message texts is the costliest check, so it goes last.
    return match.contains is None or any(match.contains in text for text in request.texts)


@dataclass(slots=True)
class _Entry:
    id: str
    rule: Rule
    served: int = 0

    @property
    def exhausted(self) -> bool:
        return not self.rule.repeat_last and self.served >= len(self.rule.responses)

    def take(self) -> ScriptedResponse:
        responses = self.rule.responses
        response = responses[min(self.served, len(responses) - 1)]
        self.served += 1
        return response


class RuleBook:
    """Rules in insertion order; the first matching, non-exhausted one answers."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, rule: Rule) -> str:
        """Store ``rule`` after the existing ones and return its id."""
        rule_id = rule.id or f"rule-{next(self._ids)}"
        if any(entry.id == rule_id for entry in self._entries):
            raise ValueError(f"a rule with id {rule_id!r} already exists")
        self._entries.append(_Entry(rule_id, rule))
        return rule_id

    def remove(self, rule_id: str) -> bool:
        before = len(self._entries)
        self._entries = [entry for entry in self._entries if entry.id != rule_id]
        return len(self._entries) != before

    def clear(self) -> None:
        self._entries.clear()

    def next_response(self, request: ChatRequest) -> tuple[str, ScriptedResponse] | None:
        """Consume and return the next response of the first rule that applies."""
        for entry in self._entries:
            if not entry.exhausted and matches(entry.rule.match, request):
                return entry.id, entry.take()
        return None

    def status(self) -> list[RuleStatus]:
        return [
            RuleStatus(id=entry.id, rule=entry.rule, served=entry.served, exhausted=entry.exhausted)
            for entry in self._entries
        ]

"""Answers to a workflow's questions given up front, for runs with nobody at the terminal.

``--answer KEY=ANSWER`` answers the request whose id is KEY, or whose question
is KEY (compared without case or surrounding spaces); ``--answer-all ANSWER``
answers any other. A typed answer may be a choice's number.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field

from tributary_cli.progress import InputRequest

__all__ = ["AnswerBook", "chosen", "parse_answer"]


def parse_answer(text: str) -> tuple[str, str]:
    """``REQUEST_OR_QUESTION=ANSWER``, split at the first '='."""
    key, sep, answer = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected REQUEST_OR_QUESTION=ANSWER, got {text!r}")
    return key.strip(), answer


@dataclass(frozen=True)
class AnswerBook:
    given: dict[str, str] = field(default_factory=dict)
    """By request id or by question (folded)."""
    default: str | None = None

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]], default: str | None) -> AnswerBook:
        return cls({_fold(key): answer for key, answer in pairs}, default)

    def answer_for(self, request: InputRequest) -> str | None:
        for key in (request.request_id, request.question):
            answer = self.given.get(_fold(key))
            if answer is not None:
                return answer
        return self.default


def chosen(request: InputRequest, typed: str) -> str:
    """What was typed, or the choice it numbers (1-based) when the request has choices."""
    text = typed.strip()
    if request.choices and text.isdigit() and 1 <= int(text) <= len(request.choices):
        return request.choices[int(text) - 1]
    return text


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()

"""Secrets masked out of text, and out of the free text of events. Pure: no I/O.

What ``Redactor`` masks, keeping what says where the secret was::

    Authorization: Basic dXNlcjpwYXNz      Authorization: Basic [REDACTED]
    Bearer abcdef0123456789                Bearer [REDACTED]
    password=hunter2, "client_secret": "x" password=[REDACTED], "client_secret": "[REDACTED]"
    redis://app:s3cret@redis:6379/0        redis://app:[REDACTED]@redis:6379/0
    sk-proj-0123456789abcdef, trb_...      sk-[REDACTED], trb_[REDACTED]

A name ending in password, passwd, passphrase, pwd, secret, token, credential(s)
or api/access/private/secret/signing key, followed by ``=`` or ``:``, has its
value masked (``db_password=``, ``X-Api-Key:``, ``"refresh_token": "..."``); a
key is recognised by its prefix (``key_prefixes``; ``DEFAULT_KEY_PREFIXES``
holds Tributary's own ``trb_`` and the usual providers').

Redacting is idempotent: redacted text redacts to itself. So every layer may
redact what it writes (the logs, the workflow store, the publisher, HTTP
errors) without knowing whether another already did, and a stored event and
the same event published stay equal. A redactor remembers the frozen models it
returned, so the second layer to redact one pays nothing.

Events: ``redact_event`` masks only their free text (tasks, titles,
instructions, results, error messages, reasons, metadata values), never ids,
tenants or types: those are compared and routed on and hold no secret.
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

from tributary_shared.core.machine import Transition

__all__ = [
    "DEFAULT_KEY_PREFIXES",
    "DEFAULT_REDACTOR",
    "REDACTED",
    "TEXT_FIELDS",
    "Redactor",
    "redact_event",
    "redact_transition",
]

REDACTED = "[REDACTED]"

DEFAULT_KEY_PREFIXES: tuple[str, ...] = (
    "trb_",  # Tributary's own API keys
    "sk-",  # OpenAI, Anthropic (sk-ant-), DeepSeek, OpenRouter (sk-or-) ...
    "sk_live_",  # Stripe
    "rk_live_",
    "ghp_",  # GitHub
    "gho_",
    "ghu_",
    "ghs_",
    "github_pat_",
    "glpat-",  # GitLab
    "xoxb-",  # Slack
    "xoxp-",
    "hf_",  # Hugging Face
    "gsk_",  # Groq
    "AKIA",  # AWS access key ids
    "AIza",  # Google API keys
)

TEXT_FIELDS = frozenset(
    {
        "task",
        "title",
        "instruction",
        "result",
        "message",
        "reason",
        "metadata",
        # Call records (llm.called, tool.called): what was sent, answered and called with.
        "messages",
        "content",
        "arguments",
        # Input requests (input.requested, input.answered, a paused step's checkpoint).
        "question",
        "answer",
    }
)
"""The fields of events (and the models inside them) that hold free text."""

_KEY_CHARS = "A-Za-z0-9_-"
_MIN_KEY_CHARS = 8
"""Characters a key needs after its prefix; fewer is a word like ``sk-learn``."""

# "Authorization: Basic xyz", "authorization=xyz", JSON with escaped quotes too: the
# rest of the value is masked (up to a quote, comma, semicolon or the line's end),
# a well-known scheme kept.
_AUTHORIZATION = re.compile(
    r"(?i)(\bauthorization(?:\\?[\"'])?[ \t]*[:=]\s*(?:\\?[\"'])?)"
    r"(?:(basic|bearer|digest|token|negotiate|ntlm|apikey|aws4-hmac-sha256)[ \t]+)?"
    r"[^\s\"',;}\\]+(?:[ \t]+[^\s\"',;}\\]+)*"
)
_BEARER = re.compile(r"(?i)\b(bearer[ \t]+)[A-Za-z0-9._~+/=-]{8,}")
# scheme://user:password@host: the password goes, the user stays. A scheme starts
# where a run of scheme characters starts, so a long run is scanned once.
_URL_CREDENTIALS = re.compile(
    r"(?i)(?<![a-z0-9+._-])([a-z][a-z0-9+._-]*://[^\s/?#@:\"'<>]*):([^\s/?#\"'<>]+)@"
)
_SENSITIVE_NAMES = (
    r"(?:password|passwd|passphrase|pwd|secret|token|credentials?|api[_-]?key|apikey"
    r"|(?:access|private|secret|signing)[_-]?key)"
)
_SECRET_KEY = re.compile(rf"(?i)(?:authorization|{_SENSITIVE_NAMES})$")
# name=value, name: value, "name": "value" (a quoted value may hold spaces, up to a
# bound). Matching starts at the secret's word: whatever name ends in it
# (db_password, X-Api-Key) stays as it is.
_NAMED_VALUE = re.compile(
    rf"(?i)({_SENSITIVE_NAMES}(?:\\?[\"'])?[ \t]*[:=][ \t]*)"
    r"(?:(\\?[\"'])([^\n]{1,1000}?)\2|([^\s\"',;&}\\]+))"
)


class Redactor:
    """Masks secrets in text; ``key_prefixes`` say which keys it recognises by prefix."""

    __slots__ = ("_clean", "_keys", "key_prefixes")

    def __init__(self, key_prefixes: Iterable[str] = DEFAULT_KEY_PREFIXES) -> None:
        self.key_prefixes = tuple(dict.fromkeys(p for p in key_prefixes if p))
        # Longest first: "sk_live_" must win over a shorter prefix of it.
        alternatives = "|".join(
            re.escape(p) for p in sorted(self.key_prefixes, key=len, reverse=True)
        )
        self._keys = (
            re.compile(rf"(?<![{_KEY_CHARS}])({alternatives})[{_KEY_CHARS}]{{{_MIN_KEY_CHARS},}}")
            if alternatives
            else None
        )
        # Frozen models this redactor already produced or found clean, by identity:
        # the store, the publisher and the call recorder all redact the same event,
        # and a large record costs the same walk each time. Weak values: an entry
        # goes with its model, so a reused id() never names another object.
        self._clean: weakref.WeakValueDictionary[int, BaseModel] = weakref.WeakValueDictionary()

    def __call__(self, text: str) -> str:
        text = _AUTHORIZATION.sub(_authorization, text)
        text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
        text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
        text = _NAMED_VALUE.sub(_named_value, text)
        if self._keys is not None:
            text = self._keys.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def __repr__(self) -> str:
        return f"Redactor(key_prefixes={self.key_prefixes!r})"

    def produced(self, model: BaseModel) -> bool:
        """Whether ``model`` is a frozen model this redactor returned (``remember``)."""
        return self._clean.get(id(model)) is model

    def remember(self, model: BaseModel) -> None:
        """Note a redacted model, when frozen: redacting it again would change nothing.

        Only frozen models: their fields cannot be set, and the free text they hold
        (strings, and the message dicts of call records) is never changed in place.
        """
        if model.model_config.get("frozen"):
            self._clean[id(model)] = model

    def json(self, value: Any) -> Any:
        """``value`` (decoded JSON: dicts, lists, strings...) with every string redacted, and
        the whole value of a key that names a secret (``{"password": "..."}``) masked."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {
                key: REDACTED
                if _names_a_secret(key) and isinstance(item, str | int | float)
                else self.json(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.json(item) for item in value]
        return value


DEFAULT_REDACTOR = Redactor()
"""Redacts with ``DEFAULT_KEY_PREFIXES``; where no configured one is passed in."""


def _names_a_secret(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def _authorization(match: re.Match[str]) -> str:
    scheme = f"{match.group(2)} " if match.group(2) else ""
    return f"{match.group(1)}{scheme}{REDACTED}"


def _named_value(match: re.Match[str]) -> str:
    quote = match.group(2)
    if quote is not None:
        return f"{match.group(1)}{quote}{REDACTED}{quote}"
    return match.group(1) + REDACTED


M = TypeVar("M", bound=BaseModel)


def redact_event(event: M, redact: Redactor) -> M:
    """``event`` with its free text (``TEXT_FIELDS``, nested models included) redacted;
    the same object when nothing changed.

    A frozen model that ``redact`` returned before is returned at once: redacting is
    idempotent, and a frozen model cannot have changed since.
    """
    if redact.produced(event):
        return event
    changes: dict[str, Any] = {}
    for name in type(event).model_fields:
        value = getattr(event, name)
        redacted = _redacted(value, redact, text=name in TEXT_FIELDS)
        if redacted is not value:
            changes[name] = redacted
    clean = event.model_copy(update=changes) if changes else event
    redact.remember(clean)
    return clean


def _redacted(value: Any, redact: Redactor, *, text: bool) -> Any:
    if isinstance(value, BaseModel):
        return redact_event(value, redact)
    if isinstance(value, str):
        if not text:
            return value
        redacted = redact(value)
        return value if redacted == value else redacted
    if isinstance(value, tuple):
        items = tuple(_redacted(item, redact, text=text) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict) and text:
        mapping = redact.json(value)
        return value if mapping == value else mapping
    return value


def redact_transition(transition: Transition, redact: Redactor) -> Transition:
    """``transition`` with the free text of everything it writes redacted: its events,
    the request, the plan, the step's outcome and checkpoint, the input request and the
    final event."""
    step = transition.step
    if step is not None and step.outcome is not None:
        step = dataclasses.replace(step, outcome=redact_event(step.outcome, redact))
    if step is not None and step.checkpoint is not None:
        step = dataclasses.replace(step, checkpoint=redact_event(step.checkpoint, redact))
    request = transition.input_request
    return dataclasses.replace(
        transition,
        events=tuple(redact_event(event, redact) for event in transition.events),
        step=step,
        request=None if transition.request is None else redact_event(transition.request, redact),
        plan=None
        if transition.plan is None
        else tuple(redact_event(planned, redact) for planned in transition.plan),
        final=None if transition.final is None else redact_event(transition.final, redact),
        input_request=None if request is None else redact_event(request, redact),
    )

"""API keys, tenants and scopes: who may do what to which workflow. Pure rules, no I/O.

A key is ``trb_<key id>_<secret>``. The prefix lets secret scanners and log
redaction recognise one; the key id (public: it is listed, and it names the key
to revoke) says which stored record to check; the secret is 40 random
alphanumerics (about 238 bits). The store keeps only the SHA-256 of the whole
key: a key that random cannot be guessed from its hash, so a slow password hash
(bcrypt, scrypt) would buy nothing and cost every request CPU on the event loop.

Scopes say what a key may do; ``admin`` implies every other scope, lets a key
see and act on every tenant's workflows, and manage keys. A key without a scope
gets 403; a workflow of another tenant is answered exactly as an unknown one
(404), so a key learns nothing about other tenants' workflows.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from tributary_shared.core.events import Model

__all__ = [
    "DEFAULT_SCOPES",
    "KEY_PATTERN",
    "KEY_PREFIX",
    "TENANT_PATTERN",
    "ApiKeyRecord",
    "Caller",
    "IssuedKey",
    "PresentedKey",
    "Scope",
    "check_tenant_id",
    "issue_key",
    "key_id_of",
    "parse_key",
    "secret_hash",
]

KEY_PREFIX = "trb_"
_KEY_ID_HEX = 12
_SECRET_CHARS = 40
_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = re.compile(
    rf"{KEY_PREFIX}(?P<key_id>[0-9a-f]{{{_KEY_ID_HEX}}})_(?P<secret>[0-9A-Za-z]{{{_SECRET_CHARS}}})"
)
"""A whole key, as secret scanners and redaction should match it."""
_KEY_ID = re.compile(rf"[0-9a-f]{{{_KEY_ID_HEX}}}")

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Tenant ids: they appear in Redis keys and events, so no ':' and no spaces."""
_TENANT = re.compile(TENANT_PATTERN)


class Scope(StrEnum):
    """What a key may do. One word per kind of action, so new actions get new words."""

    START = "start"
    """Start workflows (``POST /v1/workflows``)."""
    READ = "read"
    """Read, list and follow (SSE) workflows."""
    CANCEL = "cancel"
    """Cancel workflows."""
    INPUT = "input"
    """Answer a workflow's question to a human (human-in-the-loop input)."""
    DELETE = "delete"
    """Delete an ended workflow's stored state before its retention ends
    (``DELETE /v1/workflows/{id}``)."""
    ADMIN = "admin"
    """Every scope, over every tenant, and the management of keys."""


DEFAULT_SCOPES: frozenset[Scope] = frozenset({Scope.START, Scope.READ, Scope.CANCEL, Scope.INPUT})
"""A new key's scopes unless others are named: run and follow its tenant's workflows.
``delete`` (it destroys data) and ``admin`` are given only when asked for."""


def check_tenant_id(tenant_id: str) -> str:
    """``tenant_id`` if it is a valid tenant id; raises ``ValueError`` naming the rule."""
    if not _TENANT.fullmatch(tenant_id):
        raise ValueError(
            f"invalid tenant {tenant_id!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return tenant_id


class ApiKeyRecord(Model):
    """What the store keeps of a key: never the key itself, only its hash."""

    key_id: str
    tenant_id: str
    scopes: frozenset[Scope]
    secret_sha256: str = Field(description="SHA-256 (hex) of the whole key.")
    created_at: datetime
    label: str = Field(default="", description="The operator's note of what the key is for.")

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def accepts(self, presented: PresentedKey) -> bool:
        """Whether ``presented`` is this key (compared in constant time)."""
        return presented.key_id == self.key_id and hmac.compare_digest(
            secret_hash(presented.text), self.secret_sha256
        )

    def caller(self) -> Caller:
        return Caller(key_id=self.key_id, tenant_id=self.tenant_id, scopes=self.scopes)


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A key as a client sent it, well-formed but not yet checked against the store."""

    key_id: str
    text: str


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: the record to store, and the key itself, to be shown once."""

    record: ApiKeyRecord
    key: str


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the tenant and scopes of the key it carried."""

    key_id: str
    tenant_id: str
    scopes: frozenset[Scope]

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def may(self, scope: Scope) -> bool:
        return self.admin or scope in self.scopes

    def sees(self, tenant_id: str) -> bool:
        """Whether the caller may know that a workflow of ``tenant_id`` exists."""
        return self.admin or tenant_id == self.tenant_id


def secret_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key(text: str) -> PresentedKey | None:
    """The key in ``text``, or None when it is not shaped like one of ours."""
    match = KEY_PATTERN.fullmatch(text)
    if match is None:
        return None
    return PresentedKey(key_id=match["key_id"], text=text)


def key_id_of(text: str) -> str | None:
    """The key id named by ``text``: a key id itself, or a whole key (a leaked one, say)."""
    if _KEY_ID.fullmatch(text):
        return text
    presented = parse_key(text)
    return presented.key_id if presented is not None else None


def issue_key(
    *, tenant_id: str, scopes: Iterable[Scope], created_at: datetime, label: str = ""
) -> IssuedKey:
    """A new random key of ``tenant_id`` with ``scopes`` (``admin`` alone if it is there)."""
    granted = frozenset(scopes)
    if not granted:
        raise ValueError("a key needs at least one scope")
    if Scope.ADMIN in granted:
        granted = frozenset({Scope.ADMIN})  # it implies every other
    key_id = secrets.token_hex(_KEY_ID_HEX // 2)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_CHARS))
    key = f"{KEY_PREFIX}{key_id}_{secret}"
    record = ApiKeyRecord(
        key_id=key_id,
        tenant_id=check_tenant_id(tenant_id),
        scopes=granted,
        secret_sha256=secret_hash(key),
        created_at=created_at,
        label=label,
    )
    return IssuedKey(record=record, key=key)

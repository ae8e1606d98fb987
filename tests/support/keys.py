"""API keys for tests: issued straight into a key store, sent as a bearer header."""

from __future__ import annotations

from collections.abc import Iterable

from tributary_shared.core.access import DEFAULT_SCOPES, Scope, issue_key
from tributary_shared.core.events import utc_now
from tributary_shared.core.ports import ApiKeyStore

TEST_TENANT = "tests"
"""The tenant of the integration tests' own key (the ``api_key`` fixture)."""


async def issue(
    keys: ApiKeyStore, tenant_id: str, *, scopes: Iterable[Scope] = DEFAULT_SCOPES
) -> str:
    """A new key of ``tenant_id``, stored in ``keys``; the key itself."""
    issued = issue_key(tenant_id=tenant_id, scopes=scopes, created_at=utc_now(), label="test")
    await keys.add(issued.record)
    return issued.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}

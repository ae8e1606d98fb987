"""The API key store contract: records in, hashes only, revocation at once, listing by tenant.

The Redis server is shared with other tests, so each test names its own tenants.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.contract.conftest import Adapters
from tributary_shared.core.access import (
    DEFAULT_SCOPES,
    ApiKeyRecord,
    Scope,
    issue_key,
    parse_key,
)
from tributary_shared.core.ports import ApiKeyStore, KeyIdTaken

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def keys(adapters: Adapters) -> ApiKeyStore:
    return adapters.keys


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def stored(
    keys: ApiKeyStore,
    tenant_id: str,
    *,
    at: datetime = START,
    scopes: frozenset[Scope] = DEFAULT_SCOPES,
) -> tuple[ApiKeyRecord, str]:
    issued = issue_key(tenant_id=tenant_id, scopes=scopes, created_at=at, label="ci")
    await keys.add(issued.record)
    return issued.record, issued.key


async def test_a_stored_key_is_found_by_its_id_and_accepts_only_itself(keys: ApiKeyStore) -> None:
    record, key = await stored(keys, tenant())
    found = await keys.get(record.key_id)
    assert found == record
    presented = parse_key(key)
    assert presented is not None
    assert found.accepts(presented)
    other = parse_key(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert other is not None
    assert not found.accepts(other)
    assert key not in found.model_dump_json(), "the key itself is never stored"


async def test_an_unknown_key_id_is_none(keys: ApiKeyStore) -> None:
    assert await keys.get("0" * 12) is None


async def test_a_taken_id_is_refused_and_the_first_record_kept(keys: ApiKeyStore) -> None:
    record, _ = await stored(keys, tenant())
    impostor = record.model_copy(update={"tenant_id": tenant(), "scopes": frozenset({Scope.ADMIN})})
    with pytest.raises(KeyIdTaken):
        await keys.add(impostor)
    assert await keys.get(record.key_id) == record


async def test_revoking_forgets_the_key_at_once(keys: ApiKeyStore) -> None:
    owner = tenant()
    record, _ = await stored(keys, owner)
    assert await keys.revoke(record.key_id) is True
    assert await keys.get(record.key_id) is None
    assert await keys.list_keys(tenant_id=owner) == []
    assert await keys.revoke(record.key_id) is False


async def test_keys_are_listed_oldest_first_per_tenant_or_all(keys: ApiKeyStore) -> None:
    first, second = tenant(), tenant()
    a, _ = await stored(keys, first, at=START)
    b, _ = await stored(keys, second, at=START + timedelta(seconds=1))
    c, _ = await stored(keys, first, at=START + timedelta(seconds=2))
    assert await keys.list_keys(tenant_id=first) == [a, c]
    assert await keys.list_keys(tenant_id=second) == [b]
    everyone = [r for r in await keys.list_keys() if r.tenant_id in {first, second}]
    assert everyone == [a, b, c]

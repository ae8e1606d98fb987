"""``tributary keys``: what an operator types to issue, list and revoke API keys.

The commands run on the in-memory key store; the real command against Redis
is exercised by the integration tests (tests/integration/test_api_keys_e2e.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tributary_cli.app import main
from tributary_cli.context import CommandContext
from tributary_shared.core.access import ApiKeyRecord, Scope, parse_key
from tributary_shared.core.ports import ApiKeyStore
from tributary_shared.twins import MemoryApiKeyStore


class Terminal:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []


@pytest.fixture
def keys() -> MemoryApiKeyStore:
    return MemoryApiKeyStore()


@pytest.fixture
def terminal() -> Terminal:
    return Terminal()


def run(keys: ApiKeyStore, terminal: Terminal, *argv: str) -> int:
    @asynccontextmanager
    async def opened() -> AsyncIterator[ApiKeyStore]:
        yield keys

    context = CommandContext(key_store=opened, say=terminal.out.append, warn=terminal.err.append)
    return main(list(argv), context=lambda: context)


def test_create_prints_the_key_last_and_stores_only_its_hash(
    keys: MemoryApiKeyStore, terminal: Terminal
) -> None:
    assert run(keys, terminal, "keys", "create", "--tenant", "acme", "--label", "ci") == 0
    presented = parse_key(terminal.out[-1])
    assert presented is not None, terminal.out
    [record] = keys.records.values()
    assert record.accepts(presented)
    assert record.tenant_id == "acme"
    assert record.label == "ci"
    assert record.scopes == {Scope.START, Scope.READ, Scope.CANCEL, Scope.INPUT}
    assert presented.text not in record.model_dump_json()


def test_create_with_scopes_or_admin(keys: MemoryApiKeyStore, terminal: Terminal) -> None:
    run(keys, terminal, "keys", "create", "--tenant", "acme", "--scope", "read")
    run(keys, terminal, "keys", "create", "--tenant", "ops", "--admin")
    reader, admin = sorted(keys.records.values(), key=lambda r: r.tenant_id)
    assert reader.scopes == {Scope.READ}
    assert admin.scopes == {Scope.ADMIN}


def test_a_bad_tenant_or_scope_is_refused_before_anything_is_stored(
    keys: MemoryApiKeyStore, terminal: Terminal
) -> None:
    for argv in (["--tenant", "a:b"], ["--tenant", "acme", "--scope", "everything"]):
        with pytest.raises(SystemExit) as refused:
            run(keys, terminal, "keys", "create", *argv)
        assert refused.value.code == 2
    assert keys.records == {}


def test_list_shows_ids_tenants_and_scopes_never_a_key(
    keys: MemoryApiKeyStore, terminal: Terminal
) -> None:
    run(keys, terminal, "keys", "create", "--tenant", "acme")
    run(keys, terminal, "keys", "create", "--tenant", "globex", "--scope", "read")
    issued = [line for line in terminal.out if line.startswith("trb_")]
    terminal.out.clear()

    assert run(keys, terminal, "keys", "list", "--json") == 0
    listed = [json.loads(line) for line in terminal.out]
    assert [k["tenant_id"] for k in listed] == ["acme", "globex"]
    assert listed[1]["scopes"] == ["read"]
    terminal.out.clear()
    run(keys, terminal, "keys", "list", "--tenant", "globex")
    table = "\n".join(terminal.out)
    assert "globex" in table
    assert "acme" not in table
    for key in issued:
        assert key not in table


def test_revoke_by_id_or_by_the_key_itself(keys: MemoryApiKeyStore, terminal: Terminal) -> None:
    run(keys, terminal, "keys", "create", "--tenant", "acme")
    run(keys, terminal, "keys", "create", "--tenant", "acme")
    first, second = (parse_key(line) for line in terminal.out if line.startswith("trb_"))
    assert first is not None
    assert second is not None
    assert run(keys, terminal, "keys", "revoke", first.key_id) == 0
    assert run(keys, terminal, "keys", "revoke", second.text) == 0  # a leaked key, pasted
    assert keys.records == {}
    assert run(keys, terminal, "keys", "revoke", first.key_id) == 1
    assert terminal.err[-1] == f"error: no key {first.key_id}"
    assert run(keys, terminal, "keys", "revoke", "nonsense") == 2


def test_an_unreachable_store_is_an_error_naming_it(terminal: Terminal) -> None:
    class Unreachable(MemoryApiKeyStore):
        async def list_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
            raise RedisConnectionError("Connection refused")

    @asynccontextmanager
    async def unreachable() -> AsyncIterator[ApiKeyStore]:
        yield Unreachable()

    context = CommandContext(
        key_store=unreachable,
        where="Redis at 127.0.0.1:1",
        say=terminal.out.append,
        warn=terminal.err.append,
    )
    assert main(["keys", "list"], context=lambda: context) == 1
    assert terminal.err == ["error: cannot reach Redis at 127.0.0.1:1: Connection refused"]

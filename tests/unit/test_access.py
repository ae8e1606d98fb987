"""The pure rules of API keys: their shape, their hash, what a scope allows, whom a key sees."""

from __future__ import annotations

import pytest

from tributary_shared.core.access import (
    KEY_PATTERN,
    Caller,
    Scope,
    check_tenant_id,
    issue_key,
    key_id_of,
    parse_key,
    secret_hash,
)
from tributary_shared.core.events import utc_now


def test_a_new_key_is_recognisable_random_and_stored_as_its_hash_only() -> None:
    first = issue_key(tenant_id="acme", scopes=[Scope.READ], created_at=utc_now())
    second = issue_key(tenant_id="acme", scopes=[Scope.READ], created_at=utc_now())
    assert first.key.startswith("trb_")
    assert KEY_PATTERN.fullmatch(first.key)
    assert first.key != second.key
    assert first.record.key_id != second.record.key_id
    assert first.record.secret_sha256 == secret_hash(first.key)
    assert first.key not in first.record.model_dump_json()
    assert first.key.split("_")[1] == first.record.key_id


def test_a_key_accepts_itself_only() -> None:
    issued = issue_key(tenant_id="acme", scopes=[Scope.READ], created_at=utc_now())
    presented = parse_key(issued.key)
    assert presented is not None
    assert issued.record.accepts(presented)
    tampered = parse_key(issued.key[:-1] + ("a" if issued.key[-1] != "a" else "b"))
    assert tampered is not None
    assert not issued.record.accepts(tampered)


@pytest.mark.parametrize(
    "text",
    ["", "trb_", "Bearer trb_x", "trb_" + "a" * 12 + "_" + "b" * 39, "sk-" + "a" * 40],
)
def test_text_not_shaped_like_a_key_is_no_key(text: str) -> None:
    assert parse_key(text) is None


def test_a_key_id_is_found_in_an_id_or_in_a_whole_key() -> None:
    issued = issue_key(tenant_id="acme", scopes=[Scope.READ], created_at=utc_now())
    assert key_id_of(issued.record.key_id) == issued.record.key_id
    assert key_id_of(issued.key) == issued.record.key_id
    assert key_id_of("not a key") is None


def test_scopes_allow_what_they_name_and_admin_allows_everything() -> None:
    reader = Caller(key_id="k", tenant_id="acme", scopes=frozenset({Scope.READ}))
    assert reader.may(Scope.READ)
    assert not reader.may(Scope.START)
    assert not reader.may(Scope.ADMIN)
    admin = Caller(key_id="k", tenant_id="ops", scopes=frozenset({Scope.ADMIN}))
    assert all(admin.may(scope) for scope in Scope)


def test_a_key_sees_its_own_tenant_and_an_admin_key_every_tenant() -> None:
    acme = Caller(key_id="k", tenant_id="acme", scopes=frozenset(Scope) - {Scope.ADMIN})
    assert acme.sees("acme")
    assert not acme.sees("globex")
    assert Caller(key_id="k", tenant_id="ops", scopes=frozenset({Scope.ADMIN})).sees("globex")


def test_an_admin_key_holds_the_admin_scope_alone() -> None:
    issued = issue_key(tenant_id="ops", scopes=[Scope.READ, Scope.ADMIN], created_at=utc_now())
    assert issued.record.scopes == {Scope.ADMIN}


@pytest.mark.parametrize("tenant", ["", "a:b", "a b", "-lead", "x" * 65, "tenant\n"])
def test_tenant_ids_that_would_clash_in_keys_are_refused(tenant: str) -> None:
    with pytest.raises(ValueError, match="invalid tenant"):
        check_tenant_id(tenant)
    with pytest.raises(ValueError, match="invalid tenant"):
        issue_key(tenant_id=tenant, scopes=[Scope.READ], created_at=utc_now())


def test_a_key_needs_a_scope() -> None:
    with pytest.raises(ValueError, match="at least one scope"):
        issue_key(tenant_id="acme", scopes=[], created_at=utc_now())

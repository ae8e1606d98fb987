"""``tributary keys``: issue, list and revoke API keys, straight in the key store."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tributary_cli.context import CommandContext
from tributary_shared.core.access import (
    DEFAULT_SCOPES,
    ApiKeyRecord,
    Scope,
    check_tenant_id,
    issue_key,
    key_id_of,
)
from tributary_shared.core.events import utc_now

__all__ = ["register"]


def register(groups: Any) -> None:
    keys = groups.add_parser("keys", help="issue, list and revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="issue a key; the key itself is the last line printed (shown only this once)",
    )
    create.add_argument("--tenant", required=True, type=_tenant, help="the key's tenant")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        type=Scope,
        choices=list(Scope),
        metavar="SCOPE",
        help=f"what the key may do, repeatable: {', '.join(Scope)} "
        f"(default: {', '.join(sorted(DEFAULT_SCOPES))})",
    )
    create.add_argument(
        "--admin",
        action="store_true",
        help="an admin key: every scope, every tenant, and managing keys",
    )
    create.add_argument("--label", default="", help="a note of what the key is for")
    create.set_defaults(run=_create)

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--tenant", type=_tenant, help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_list)

    revoke = actions.add_parser(
        "revoke", help="revoke a key: every gateway refuses it from the next request on"
    )
    revoke.add_argument("key", metavar="KEY_ID", help="the key's id (or the key itself)")
    revoke.set_defaults(run=_revoke)


def _tenant(text: str) -> str:
    try:
        return check_tenant_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _create(args: argparse.Namespace, ctx: CommandContext) -> int:
    scopes = set(args.scopes or DEFAULT_SCOPES)
    if args.admin:
        scopes.add(Scope.ADMIN)
    issued = issue_key(tenant_id=args.tenant, scopes=scopes, created_at=utc_now(), label=args.label)
    async with ctx.key_store() as store:
        await store.add(issued.record)
    record = issued.record
    ctx.say(
        f"Issued key {record.key_id} for tenant {record.tenant_id} "
        f"with scopes: {', '.join(sorted(record.scopes))}."
    )
    ctx.say("Store it now; it cannot be shown again. Send it as: Authorization: Bearer <key>")
    ctx.say(issued.key)
    return 0


async def _list(args: argparse.Namespace, ctx: CommandContext) -> int:
    async with ctx.key_store() as store:
        records = await store.list_keys(tenant_id=args.tenant)
    if args.json:
        for record in records:
            ctx.say(json.dumps(_public(record)))
        return 0
    ctx.say(f"{'KEY ID':<13} {'TENANT':<20} {'CREATED':<20} {'SCOPES':<30} LABEL")
    for record in records:
        created = record.created_at.strftime("%Y-%m-%d %H:%M:%S")
        scopes = ",".join(sorted(record.scopes))
        ctx.say(
            f"{record.key_id:<13} {record.tenant_id:<20} {created:<20} {scopes:<30} {record.label}"
        )
    ctx.warn(f"{len(records)} key(s)")
    return 0


async def _revoke(args: argparse.Namespace, ctx: CommandContext) -> int:
    key_id = key_id_of(args.key)
    if key_id is None:
        ctx.warn(f"error: {args.key!r} is neither a key id nor a key")
        return 2
    async with ctx.key_store() as store:
        revoked = await store.revoke(key_id)
    if not revoked:
        ctx.warn(f"error: no key {key_id}")
        return 1
    ctx.say(f"Revoked key {key_id}.")
    return 0


def _public(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "tenant_id": record.tenant_id,
        "scopes": sorted(record.scopes),
        "label": record.label,
        "created_at": record.created_at.isoformat(),
    }

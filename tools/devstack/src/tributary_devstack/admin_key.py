"""The local stack's admin API key: issued by ``up`` when none works, kept in the run directory.

The gateway answers nothing without a key, so a newcomer's ``make up`` makes
one (an admin key of tenant ``local``) and ``make status`` and ``make demo``
read it from ``<run dir>/admin.key``. A key that no longer works (Redis's data
was wiped, or someone revoked it) is replaced by a new one.
"""

from __future__ import annotations

import os
from pathlib import Path

from redis.asyncio import Redis

from tributary_devstack.config import StackConfig
from tributary_devstack.infra import redis_client_options
from tributary_devstack.kafka_admin import run_sync
from tributary_shared.core.access import Scope, issue_key, parse_key
from tributary_shared.core.events import utc_now
from tributary_shared.runtime.apikeys import RedisApiKeyStore

__all__ = ["ADMIN_TENANT", "ensure_admin_key", "read_admin_key"]

ADMIN_TENANT = "local"


def read_admin_key(config: StackConfig) -> str | None:
    """The key ``up`` saved, or None when there is none."""
    try:
        text = config.admin_key_file.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def ensure_admin_key(config: StackConfig) -> tuple[str, bool]:
    """An admin key that Redis accepts, and whether it was issued just now."""
    return run_sync(_ensure(config))


async def _ensure(config: StackConfig) -> tuple[str, bool]:
    redis = Redis.from_url(config.redis_url, **redis_client_options(config))
    try:
        keys = RedisApiKeyStore(redis)
        saved = read_admin_key(config)
        presented = parse_key(saved) if saved is not None else None
        if presented is not None:
            record = await keys.get(presented.key_id)
            if record is not None and record.admin and record.accepts(presented):
                return presented.text, False
        issued = issue_key(
            tenant_id=ADMIN_TENANT,
            scopes=[Scope.ADMIN],
            created_at=utc_now(),
            label="local stack admin (make up)",
        )
        await keys.add(issued.record)
    finally:
        await redis.aclose()
    _write_private(config.admin_key_file, issued.key + "\n")
    return issued.key, True


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by this user only, replacing the file in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    partial.replace(path)

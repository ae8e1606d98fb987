"""The API key store in memory."""

from __future__ import annotations

from tributary_shared.core.access import ApiKeyRecord
from tributary_shared.core.ports import KeyIdTaken

__all__ = ["MemoryApiKeyStore"]


class MemoryApiKeyStore:
    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    async def add(self, record: ApiKeyRecord) -> None:
        if record.key_id in self.records:
            raise KeyIdTaken(record.key_id)
        self.records[record.key_id] = record

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        return self.records.get(key_id)

    async def list_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        ordered = sorted(self.records.values(), key=lambda r: (r.created_at, r.key_id))
        return [r for r in ordered if tenant_id is None or r.tenant_id == tenant_id]

    async def revoke(self, key_id: str) -> bool:
        return self.records.pop(key_id, None) is not None

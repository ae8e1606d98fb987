"""Where the gateway is and which key to send: arguments first, then the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "ClientConfig", "resolve_config"]

DEFAULT_BASE_URL = "http://localhost:8000"
"""The local stack's gateway (``make up``)."""

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""Reads wait up to 30 s: longer than the gateway's keep-alive on a quiet stream (15 s)."""

URL_VARIABLE = "TRIBUTARY_URL"
KEY_VARIABLE = "TRIBUTARY_API_KEY"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    base_url: str
    api_key: str = ""

    def __repr__(self) -> str:  # never print the key
        return f"ClientConfig(base_url={self.base_url!r}, api_key=***)"


def resolve_config(
    base_url: str | None, api_key: str | None, *, env: Mapping[str, str] | None = None
) -> ClientConfig:
    """The gateway's URL and the key: given ones, else ``TRIBUTARY_URL`` / ``TRIBUTARY_API_KEY``."""
    environ = os.environ if env is None else env
    url = base_url or environ.get(URL_VARIABLE) or DEFAULT_BASE_URL
    key = api_key if api_key is not None else environ.get(KEY_VARIABLE, "")
    if not key:
        raise ValueError(
            f"no API key: pass api_key=... or set {KEY_VARIABLE} "
            "(the local stack writes its admin key to .run/admin.key)"
        )
    return ClientConfig(base_url=url.rstrip("/"), api_key=key)

"""Which MCP servers the agent-runner uses, and how their secrets are kept out of sight.

Servers come from ``TRIBUTARY_MCP_SERVERS``, a JSON list, one object per server:

* ``{"name": "files", "transport": "stdio", "command": "...", "args": [...], "env": {...}}``
* ``{"name": "search", "transport": "streamable_http", "url": "https://...",
  "headers": {"Authorization": "Bearer ..."}}``

plus, for either, ``timeout_s`` (per tool call), ``tools`` (an allow-list of
the server's tool names) and ``read_only`` (whether its tools are free of side
effects).

Header values, environment values and the URL are credentials as often as
not, so they are ``SecretStr``: they print as ``**********``, log lines show
only :meth:`McpHttpServer.target`, and :class:`Redactor` scrubs their values
from any text a server sends back before it reaches a log, an error or the
model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from tributary_shared.runtime.settings import TributarySettings

#: Server names become tool-name prefixes, so they use the OpenAI function-name charset.
SERVER_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

#: Secrets shorter than this are not scrubbed from text: a value such as ``1``
#: or ``info`` would otherwise mangle every result, and real tokens are longer.
MIN_REDACTED_LENGTH = 8
REDACTED = "[redacted]"


class _ServerBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=SERVER_NAME_PATTERN,
        description="Name of the server, unique among them; its tools are offered to the model "
        "as `<name>__<tool>`.",
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds one tool call may take before it fails as a timeout. Raise it for "
        "slow tools.",
    )
    tools: list[str] | None = Field(
        default=None,
        description="Allow-list of the server's tool names to offer; unset offers them all. "
        "Names the server does not have are logged.",
    )
    read_only: bool = Field(
        default=False,
        description="Treat every tool of the server as free of side effects, so its calls are "
        "not guarded against repetition when a step runs again. When false, only tools "
        "annotated `readOnlyHint` are.",
    )


class McpStdioServer(_ServerBase):
    """A server the agent-runner starts as a subprocess and talks to over stdin/stdout."""

    transport: Literal["stdio"] = Field(description="A subprocess speaking MCP on stdin/stdout.")
    command: str = Field(
        min_length=1,
        description="Program that starts the server; it must be installed where the "
        "agent-runner runs (its container image).",
    )
    args: list[str] = Field(
        default_factory=list,
        description="Arguments of `command`. Visible in process listings: put credentials in "
        "`env`, not here.",
    )
    env: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Variables of the server process, added to a minimal inherited environment "
        "(`PATH`, `HOME`, `USER`, ...), not to the agent-runner's own. Held as secrets.",
    )
    cwd: str | None = Field(
        default=None,
        description="Working directory of the server process; unset: the agent-runner's.",
    )

    def target(self) -> str:
        """How the server is named in logs and errors: the command, never its arguments."""
        return f"stdio {self.command.rsplit('/', 1)[-1]}"

    def secrets(self) -> list[str]:
        return [value.get_secret_value() for value in self.env.values()]


class McpHttpServer(_ServerBase):
    """A remote server reached over the streamable HTTP transport."""

    transport: Literal["streamable_http"] = Field(description="MCP's streamable HTTP transport.")
    url: SecretStr = Field(
        description="Absolute `http(s)` URL of the MCP endpoint. Held as a secret: logs show "
        "only its scheme, host and port."
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Sent with every request, e.g. `Authorization`; held as secrets. Prefer "
        "them to query parameters for keys, which HTTP client logs may show.",
    )

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The message must not quote the URL: it may carry a token.
            raise ValueError("url must be an absolute http(s) URL")
        return value

    def target(self) -> str:
        """How the server is named in logs and errors: scheme, host and port only.

        Some services put a key in the path or the query, so neither is shown.
        """
        parts = urlsplit(self.url.get_secret_value())
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        return f"{parts.scheme}://{host}{port}"

    def secrets(self) -> list[str]:
        url = self.url.get_secret_value()
        parts = urlsplit(url)
        found = [url, parts.username or "", parts.password or ""]
        found += [value for _, value in parse_qsl(parts.query)]
        for value in self.headers.values():
            secret = value.get_secret_value()
            # "Bearer <token>": the token alone may come back too.
            found += [secret, *secret.split()]
        return found


McpServer = Annotated[McpStdioServer | McpHttpServer, Field(discriminator="transport")]


class McpSettings(TributarySettings):
    """MCP servers whose tools are offered to agents (env ``TRIBUTARY_MCP_*``).

    With no servers configured nothing is started and no tool is added.
    """

    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_MCP_", extra="ignore", frozen=True)

    servers: list[McpServer] = Field(
        default_factory=list,
        description="MCP servers whose tools agents may call, one JSON object each (keys "
        "below); empty: no MCP tools.",
    )
    connect_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Seconds allowed for starting (or reaching) a server and completing the MCP "
        "handshake. Raise it for servers that start slowly, e.g. an `npx` package download.",
    )
    retry_interval_s: float = Field(
        default=15.0,
        gt=0,
        description="Seconds before trying again a server that could not be reached at start; "
        "the pause doubles after each failure, up to `TRIBUTARY_MCP_RETRY_MAX_INTERVAL_S`.",
    )
    retry_max_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="Longest pause, in seconds, between tries of a server that could not be "
        "reached.",
    )
    reconnect_delay_s: float = Field(
        default=5.0,
        ge=0,
        description="Seconds during which calls to a server whose dropped session could not be "
        "reopened fail at once, instead of each waiting out `TRIBUTARY_MCP_CONNECT_TIMEOUT_S`.",
    )
    max_result_chars: int = Field(
        default=50_000,
        ge=1_000,
        description="Characters of one tool result passed to the model; a longer result is cut, "
        "with a note saying so, so that one call cannot flood the model's context.",
    )

    @field_validator("servers")
    @classmethod
    def _unique_names(cls, servers: list[McpServer]) -> list[McpServer]:
        seen: set[str] = set()
        for server in servers:
            if server.name in seen:
                raise ValueError(f"MCP server name {server.name!r} is used twice")
            seen.add(server.name)
        return servers


class Redactor:
    """Replaces known secret values in text with ``[redacted]``.

    Servers are trusted with their credentials, but a misbehaving one may echo
    them (in an error about a rejected token, say); whatever it sends goes
    through this before it is logged or shown to the model.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted(
            {s for s in secrets if len(s) >= MIN_REDACTED_LENGTH}, key=len, reverse=True
        )
        # Longest first, so a token inside a longer secret (the URL) is not left half-replaced.
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    @classmethod
    def for_server(cls, server: McpStdioServer | McpHttpServer) -> Redactor:
        return cls(server.secrets())

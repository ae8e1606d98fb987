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
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Server names become tool-name prefixes, so they use the OpenAI function-name charset.
SERVER_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

#: Secrets shorter than this are not scrubbed from text: a value such as ``1``
#: or ``info`` would otherwise mangle every result, and real tokens are longer.
MIN_REDACTED_LENGTH = 8
REDACTED = "[redacted]"


class _ServerBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SERVER_NAME_PATTERN, description="Prefix of the tools' names.")
    timeout_s: float = Field(default=30.0, gt=0, le=3600, description="Limit of one tool call.")
    tools: list[str] | None = Field(
        default=None, description="Offer only these tools of the server (all when unset)."
    )
    read_only: bool = Field(
        default=False,
        description="Treat every tool of the server as free of side effects; a tool's own "
        "readOnlyHint annotation can still mark it read-only when this is false.",
    )


class McpStdioServer(_ServerBase):
    """A server the agent-runner starts as a subprocess and talks to over stdin/stdout."""

    transport: Literal["stdio"]
    command: str = Field(min_length=1)
    #: Visible in process listings: put credentials in ``env``, not here.
    args: list[str] = Field(default_factory=list)
    #: Added to a minimal inherited environment (PATH, HOME, ...), not to ours.
    env: dict[str, SecretStr] = Field(default_factory=dict)
    cwd: str | None = None

    def target(self) -> str:
        """How the server is named in logs and errors: the command, never its arguments."""
        return f"stdio {self.command.rsplit('/', 1)[-1]}"

    def secrets(self) -> list[str]:
        return [value.get_secret_value() for value in self.env.values()]


class McpHttpServer(_ServerBase):
    """A remote server reached over the streamable HTTP transport."""

    transport: Literal["streamable_http"]
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)

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


class McpSettings(BaseSettings):
    """MCP servers whose tools are offered to agents (env ``TRIBUTARY_MCP_*``).

    With no servers configured nothing is started and no tool is added.
    """

    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_MCP_", extra="ignore", frozen=True)

    servers: list[McpServer] = Field(default_factory=list)
    #: Limit for starting a server (or reaching it) and completing the MCP handshake.
    connect_timeout_s: float = Field(default=30.0, gt=0, le=600)
    #: First wait before trying again a server that could not be reached at start;
    #: it doubles after each failure up to ``retry_max_interval_s``.
    retry_interval_s: float = Field(default=15.0, gt=0)
    retry_max_interval_s: float = Field(default=300.0, gt=0)
    #: After a session dropped and could not be reopened, calls to that server's
    #: tools fail at once for this long instead of each waiting out a connect timeout.
    reconnect_delay_s: float = Field(default=5.0, ge=0)
    #: Longer tool results are cut, so one call cannot flood the model's context.
    max_result_chars: int = Field(default=50_000, ge=1_000)

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

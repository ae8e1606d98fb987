"""MCP server configuration: parsing from the environment, validation, secrets kept hidden."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tributary_agent_runner.tools.mcp_config import (
    REDACTED,
    McpHttpServer,
    McpSettings,
    McpStdioServer,
    Redactor,
)
from tributary_shared.runtime.settings import ConfigurationError, load_settings

TOKEN = "tok-0123456789abcdef"
URL_KEY = "urlkey-abcdef123456"
ENV_SECRET = "env-secret-value-42"

SERVERS = [
    {
        "name": "files",
        "transport": "stdio",
        "command": "/usr/local/bin/mcp-files",
        "args": ["--root", "/data"],
        "env": {"FILES_TOKEN": ENV_SECRET},
        "tools": ["read_file"],
        "timeout_s": 12,
    },
    {
        "name": "search",
        "transport": "streamable_http",
        "url": f"https://user:pw-9876543210@search.example.com:8443/mcp?key={URL_KEY}",
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "read_only": True,
    },
]


def test_servers_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_MCP_SERVERS", json.dumps(SERVERS))
    monkeypatch.setenv("TRIBUTARY_MCP_CONNECT_TIMEOUT_S", "7")
    settings = load_settings(McpSettings)

    files, search = settings.servers
    assert isinstance(files, McpStdioServer)
    assert files.args == ["--root", "/data"]
    assert files.env["FILES_TOKEN"].get_secret_value() == ENV_SECRET
    assert files.tools == ["read_file"]
    assert files.timeout_s == 12
    assert files.read_only is False
    assert isinstance(search, McpHttpServer)
    assert search.headers["Authorization"].get_secret_value() == f"Bearer {TOKEN}"
    assert search.read_only is True
    assert search.tools is None
    assert settings.connect_timeout_s == 7


def test_no_servers_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIBUTARY_MCP_SERVERS", raising=False)
    assert McpSettings().servers == []


def test_secrets_do_not_show_in_reprs_or_targets() -> None:
    settings = McpSettings.model_validate({"servers": SERVERS})
    shown = repr(settings) + str(settings) + " ".join(s.target() for s in settings.servers)
    for secret in (TOKEN, URL_KEY, ENV_SECRET, "pw-9876543210"):
        assert secret not in shown
    files, search = settings.servers
    assert files.target() == "stdio mcp-files"  # arguments are not shown either
    assert search.target() == "https://search.example.com:8443"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"name": "has space"}, "name"),
        ({"name": "x" * 33}, "name"),
        ({"transport": "carrier-pigeon"}, "transport"),
        (
            {"url": f"ftp://search.example.com/?key={URL_KEY}"},
            "url must be an absolute http(s) URL",
        ),
        ({"url": f"/relative?key={URL_KEY}"}, "url must be an absolute http(s) URL"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_servers_are_refused_without_quoting_secrets(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, object], complaint: str
) -> None:
    server = {**SERVERS[1], **change}
    monkeypatch.setenv("TRIBUTARY_MCP_SERVERS", json.dumps([server]))
    with pytest.raises(ConfigurationError) as caught:
        load_settings(McpSettings)
    message = str(caught.value)
    assert "TRIBUTARY_MCP_SERVERS" in message
    assert complaint.lower() in message.lower()
    assert URL_KEY not in message
    assert TOKEN not in message


def test_server_names_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="used twice"):
        McpSettings.model_validate({"servers": [SERVERS[0], {**SERVERS[1], "name": "files"}]})


def test_redactor_scrubs_every_configured_secret() -> None:
    settings = McpSettings.model_validate({"servers": SERVERS})
    files, search = settings.servers
    http_redact = Redactor.for_server(search)
    text = f"rejected Bearer {TOKEN}; token {TOKEN}; key={URL_KEY}; pw-9876543210 ok"
    scrubbed = http_redact(text)
    assert TOKEN not in scrubbed
    assert URL_KEY not in scrubbed
    assert "pw-9876543210" not in scrubbed
    assert scrubbed.endswith(" ok")
    assert REDACTED in scrubbed
    assert Redactor.for_server(files)(f"value={ENV_SECRET}") == f"value={REDACTED}"


def test_short_values_are_not_treated_as_secrets() -> None:
    redact = Redactor(["info", "1", "long-enough-secret"])
    assert redact("level info, 1 item, long-enough-secret") == f"level info, 1 item, {REDACTED}"
    assert Redactor([])("unchanged") == "unchanged"

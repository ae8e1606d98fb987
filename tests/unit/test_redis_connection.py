"""Redis over TLS (``rediss://``) with a user and password, from the settings."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from unittest import mock

import pytest
from redis.asyncio import SSLConnection
from redis.asyncio.connection import Connection

from tests.support.tls import TestAuthority
from tests.unit.test_deploy_settings import REPO
from tributary_shared.runtime.redis_client import connection_options, redis_client
from tributary_shared.runtime.settings import ConfigurationError, RedisSettings, load_settings

PASSWORD = "redis-pass-not-logged"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRIBUTARY_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    return TestAuthority(tmp_path_factory.mktemp("tls"))


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> RedisSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(RedisSettings)


async def test_the_default_is_plain_redis_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from({}, monkeypatch)
    assert connection_options(settings) == {}
    client = redis_client(settings)
    try:
        pool = client.connection_pool
        assert pool.connection_class is Connection
        assert pool.connection_kwargs["host"] == "127.0.0.1"
        assert pool.connection_kwargs.get("password") is None
    finally:
        await client.aclose()


async def test_rediss_with_a_user_a_password_file_and_a_ca_verifies_the_server(
    authority: TestAuthority, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    settings = settings_from(
        {
            "TRIBUTARY_REDIS_URL": "rediss://redis.example:6380/2",
            "TRIBUTARY_REDIS_USERNAME": "tributary",
            "TRIBUTARY_REDIS_PASSWORD_FILE": str(password_file),
            "TRIBUTARY_REDIS_SSL_CA_PATH": str(authority.ca_file),
        },
        monkeypatch,
    )
    assert PASSWORD not in repr(settings)
    client = redis_client(settings, for_blocking_reads=True)
    try:
        pool = client.connection_pool
        assert pool.connection_class is SSLConnection
        kwargs = pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.example", 6380, 2)
        assert (kwargs["username"], kwargs["password"]) == ("tributary", PASSWORD)
        assert kwargs["ssl_ca_certs"] == str(authority.ca_file)
        assert kwargs["ssl_cert_reqs"] == "required"
        assert kwargs["ssl_check_hostname"] is True
        assert kwargs["socket_timeout"] is None
    finally:
        await client.aclose()


def test_a_client_certificate_goes_with_tls(
    authority: TestAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = authority.issue("redis-client", client=True)
    settings = settings_from(
        {
            "TRIBUTARY_REDIS_URL": "rediss://default:pw@redis.example:6380/0",
            "TRIBUTARY_REDIS_SSL_CERT_PATH": str(client.cert),
            "TRIBUTARY_REDIS_SSL_KEY_PATH": str(client.key),
            "TRIBUTARY_REDIS_SSL_CHECK_HOSTNAME": "false",
        },
        monkeypatch,
    )
    options = connection_options(settings)
    assert options["ssl_certfile"] == str(client.cert)
    assert options["ssl_keyfile"] == str(client.key)
    assert options["ssl_check_hostname"] is False
    assert "ssl_ca_certs" not in options  # the system's authorities
    assert "password" not in options  # the URL's


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {
                "TRIBUTARY_REDIS_URL": f"redis://:{PASSWORD}@r:6379/0",
                "TRIBUTARY_REDIS_PASSWORD": "other",
            },
            "TRIBUTARY_REDIS_PASSWORD is set and TRIBUTARY_REDIS_URL carries a password",
        ),
        (
            {
                "TRIBUTARY_REDIS_URL": f"redis://someone:{PASSWORD}@r:6379/0",
                "TRIBUTARY_REDIS_USERNAME": "other",
            },
            "TRIBUTARY_REDIS_USERNAME is set and TRIBUTARY_REDIS_URL names a user",
        ),
        ({"TRIBUTARY_REDIS_URL": f"http://:{PASSWORD}@r:6379/0"}, "must start with redis://"),
        (
            {"TRIBUTARY_REDIS_URL": f"redis://:{PASSWORD}@r/0", "TRIBUTARY_REDIS_SSL_CA_PATH": "."},
            "TRIBUTARY_REDIS_SSL_CA_PATH",
        ),
    ],
)
def test_an_ambiguous_or_insecure_setup_stops_the_service_without_quoting_the_url(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        settings_from(env, monkeypatch)
    assert PASSWORD not in str(caught.value)


def test_tls_files_with_a_plain_url_are_refused(
    authority: TestAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"TRIBUTARY_REDIS_SSL_CA_PATH": str(authority.ca_file)}
    with pytest.raises(ConfigurationError, match="not a rediss:// "):
        settings_from(env, monkeypatch)


# --- every Redis client goes through the options ------------------------------------------

#: Ways to build a redis-py client or pool.
REDIS_BUILDERS = frozenset({"Redis", "StrictRedis", "ConnectionPool", "BlockingConnectionPool"})
#: The functions that turn settings into a client's credentials and TLS options.
OPTION_SOURCES = frozenset({"connection_options", "redis_client_options"})
#: The local stack's helpers that take those options from their caller.
FORWARDERS = frozenset({"redis_ping", "read_gates"})


def redis_client_calls(path: Path) -> list[tuple[str, bool]]:
    """("file:line", goes through the options) for every client or pool built in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(REPO)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        builder = isinstance(func, ast.Name) and func.id in REDIS_BUILDERS
        builder |= isinstance(func, ast.Attribute) and func.attr in REDIS_BUILDERS
        builder |= (
            isinstance(func, ast.Attribute)
            and func.attr == "from_url"
            and isinstance(func.value, ast.Name | ast.Attribute)
            and (getattr(func.value, "id", None) or getattr(func.value, "attr", ""))
            in REDIS_BUILDERS
        )
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if builder:
            spread = [kw.value for kw in node.keywords if kw.arg is None]
            ok = any(kw.arg == "connection_pool" for kw in node.keywords) or any(
                isinstance(value, ast.Name)  # options handed down by the caller
                or (
                    isinstance(value, ast.Call)
                    and getattr(value.func, "id", getattr(value.func, "attr", None))
                    in OPTION_SOURCES
                )
                for value in spread
            )
            found.append((f"{where}:{node.lineno}", ok))
        elif name in FORWARDERS:
            ok = len(node.args) >= 2 or any(kw.arg == "options" for kw in node.keywords)
            found.append((f"{where}:{node.lineno} {name}", ok))
    return found


def test_every_redis_client_of_the_code_base_takes_the_configured_credentials_and_tls() -> None:
    roots = [REPO / "shared" / "src", REPO / "shared" / "devtools" / "src", REPO / "cli" / "src"]
    roots += sorted((REPO / "services").glob("*/src")) + sorted((REPO / "tools").glob("*/src"))
    calls = [
        call for root in roots for path in root.rglob("*.py") for call in redis_client_calls(path)
    ]
    bypassing = [where for where, ok in calls if not ok]
    assert not bypassing, bypassing
    # Not vacuous: the services' pooled and single-connection clients, the local stack's
    # readiness probe and its gate reader, and the calls that hand options to them.
    assert len(calls) >= 6, calls


def test_the_check_catches_a_client_built_without_the_options() -> None:
    sample = REPO / "shared" / "src" / "unchecked_sample.py"
    bad = (
        "r = Redis.from_url(url)\n"
        "s = redis.Redis(host='h', port=1)\n"
        "p = BlockingConnectionPool.from_url(url, max_connections=2)\n"
        "ok = Redis(connection_pool=p)\n"
        "ping = redis_ping(url)\n"
    )
    with mock.patch.object(Path, "read_text", return_value=bad):
        verdicts = [ok for _where, ok in redis_client_calls(sample)]
    assert verdicts == [False, False, False, True, False]

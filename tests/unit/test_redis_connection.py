"""Redis over TLS (``rediss://``) with a user and password, from the settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from redis.asyncio import SSLConnection
from redis.asyncio.connection import Connection

from tests.support.tls import TestAuthority
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

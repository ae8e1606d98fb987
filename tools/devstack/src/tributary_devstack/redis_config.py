"""Pure construction of the ``redis-server`` command line and its ACL file."""

from __future__ import annotations

from tributary_devstack.config import StackConfig


def redis_command(config: StackConfig) -> list[str]:
    """Run Redis in the foreground as our child, durable enough for crash tests.

    AOF with ``everysec`` loses at most about a second of writes if Redis is
    killed; RDB snapshots are off (``--save ""``) because the AOF already
    covers durability and snapshots would only add fork pauses.

    With TLS configured, Redis listens on its port with TLS only (``--port 0``)
    and asks clients for no certificate; with a password, its users come from
    the ACL file (``redis_acl``), so the password is not on the command line.
    """
    if config.uses_tls:
        listen = [
            "--port",
            "0",
            "--tls-port",
            str(config.redis_port),
            "--tls-cert-file",
            str(config.tls_cert_path),
            "--tls-key-file",
            str(config.tls_key_path),
            "--tls-ca-cert-file",
            str(config.tls_ca_path),
            "--tls-auth-clients",
            "no",
        ]
    else:
        listen = ["--port", str(config.redis_port)]
    users = ["--aclfile", str(config.redis_acl_path)] if config.uses_passwords else []
    return [
        config.redis_server,
        *listen,
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        *users,
        "--daemonize",
        "no",
        "--dir",
        str(config.redis_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        # Empty logfile means stdout, which the launcher sends to the log file.
        "--logfile",
        "",
        "--loglevel",
        "notice",
    ]


def redis_acl(config: StackConfig) -> str:
    """The ACL file: the default user switched off, the stack's user allowed everything."""
    assert config.infra_password is not None
    password = config.infra_password.get_secret_value()
    return f"user default off\nuser {config.infra_username} on >{password} ~* &* +@all\n"

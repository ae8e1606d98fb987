"""Pure construction of the ``redis-server`` command line."""

from __future__ import annotations

from tributary_devstack.config import StackConfig


def redis_command(config: StackConfig) -> list[str]:
    """Run Redis in the foreground as our child, durable enough for crash tests.

    AOF with ``everysec`` loses at most about a second of writes if Redis is
    killed; RDB snapshots are off (``--save ""``) because the AOF already
    covers durability and snapshots would only add fork pauses.
    """
    return [
        config.redis_server,
        "--port",
        str(config.redis_port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
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

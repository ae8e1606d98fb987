"""The ``tributary`` command: one subparser per group of subcommands.

A group module provides ``register(subparsers)``, which adds its parser and
sets ``run`` on each subcommand: an async function of the parsed arguments
and the ``CommandContext`` that returns the exit status. The context opens
Redis or Kafka only when a command asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from tributary_cli import events, keys
from tributary_cli.context import CommandContext, Unreachable, deployment_context
from tributary_cli.replay import command as replay
from tributary_cli.replay.source import KafkaUnavailable

__all__ = ["build_parser", "main"]

GROUPS = (keys.register, replay.register, events.register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tributary",
        description="Operate a Tributary deployment. Settings come from the same environment "
        "variables as the services' (TRIBUTARY_REDIS_URL, TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS, ...).",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(groups)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    context: Callable[[], CommandContext] = deployment_context,
) -> int:
    args = build_parser().parse_args(argv)
    # aiokafka logs each failed connection attempt; the command says once what failed.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    ctx = context()
    try:
        status: int = asyncio.run(args.run(args, ctx))
    except (Unreachable, KafkaUnavailable) as exc:
        ctx.warn(f"error: {exc}")
        return 1
    except (RedisError, OSError) as exc:
        ctx.warn(f"error: cannot reach {ctx.where}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return status

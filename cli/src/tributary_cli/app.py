"""The ``tributary`` command: one subparser per group of subcommands.

A group module provides ``register(subparsers)``, which adds its parser and
sets ``run`` on each subcommand: an async function of the parsed arguments
and the ``CommandContext`` that returns the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from tributary_cli import keys
from tributary_cli.context import CommandContext, redis_context

__all__ = ["build_parser", "main"]

GROUPS = (keys.register,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tributary",
        description="Operate a Tributary deployment. Settings come from the same environment "
        "variables as the services' (TRIBUTARY_REDIS_URL, ...).",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(groups)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    context: Callable[[], CommandContext] = redis_context,
) -> int:
    args = build_parser().parse_args(argv)
    ctx = context()
    try:
        status: int = asyncio.run(args.run(args, ctx))
    except (RedisError, OSError) as exc:
        ctx.warn(f"error: cannot reach {ctx.where}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return status

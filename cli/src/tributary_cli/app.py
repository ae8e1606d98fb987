"""The ``tributary`` command: one subparser per group of subcommands.

A group module provides ``register(subparsers)``, which adds its parser and
sets ``run`` on each subcommand: an async function of the parsed arguments
and the ``CommandContext`` that returns the exit status. The context opens
Redis, Kafka or the gateway only when a command asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from tributary_cli import events, keys, workflows
from tributary_cli.context import CommandContext, Unreachable, deployment_context
from tributary_cli.replay import command as replay
from tributary_cli.replay.source import KafkaUnavailable

__all__ = ["build_parser", "main", "run_command"]

GROUPS = (workflows.register, events.register, keys.register, replay.register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tributary",
        description="Run and follow workflows through the gateway (--url/--api-key, or "
        "TRIBUTARY_URL/TRIBUTARY_API_KEY), and operate a Tributary deployment: keys, replay "
        "and export read the same environment variables as the services' "
        "(TRIBUTARY_REDIS_URL, TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS, ...).",
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
    args = build_parser().parse_args(_with_events_shorthand(argv))
    try:
        return asyncio.run(_execute(args, context()))
    except KeyboardInterrupt:
        return 130


async def run_command(
    argv: Sequence[str], *, context: Callable[[], CommandContext] = deployment_context
) -> int:
    """``main`` for a caller already inside an event loop (usage errors raise SystemExit)."""
    args = build_parser().parse_args(_with_events_shorthand(argv))
    return await _execute(args, context())


async def _execute(args: argparse.Namespace, ctx: CommandContext) -> int:
    # aiokafka logs each failed connection attempt; the command says once what failed.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        status: int = await args.run(args, ctx)
    except (Unreachable, KafkaUnavailable) as exc:
        ctx.warn(f"error: {exc}")
        return 1
    except (RedisError, OSError) as exc:
        ctx.warn(f"error: cannot reach {ctx.where}: {exc}")
        return 1
    return status


def _with_events_shorthand(argv: Sequence[str] | None) -> list[str]:
    """``events WORKFLOW_ID ...`` is ``events follow WORKFLOW_ID ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    shorthand = len(args) > 1 and args[0] == "events" and not args[1].startswith("-")
    if shorthand and args[1] not in events.ACTIONS:
        args.insert(1, "follow")
    return args

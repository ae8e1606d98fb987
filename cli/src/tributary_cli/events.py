"""``tributary events``: a workflow's events as a file, to replay where Kafka is not.

    tributary events export WORKFLOW_ID -o FILE

The file (format in ``replay.source``) holds every event of the workflow from every
topic, decoded and encoded again, in timeline order; ``tributary replay
--from-file FILE`` reads it with neither Kafka nor Redis.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tributary_cli.context import CommandContext
from tributary_cli.replay.command import events_on_kafka
from tributary_cli.replay.source import write_export

__all__ = ["register"]


def register(groups: Any) -> None:
    events = groups.add_parser("events", help="export a workflow's events from Kafka")
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write a workflow's events (every topic) to a file, one JSON per line",
    )
    export.add_argument("workflow_id", metavar="WORKFLOW_ID", help="the workflow")
    export.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE", help="the file to write"
    )
    export.set_defaults(run=_export)


async def _export(args: argparse.Namespace, ctx: CommandContext) -> int:
    events = await events_on_kafka(ctx, args.workflow_id)
    if events is None:
        return 1
    try:
        written = write_export(args.output, args.workflow_id, events)
    except OSError as exc:
        ctx.warn(f"error: cannot write {args.output}: {exc.strerror or exc}")
        return 1
    ctx.say(f"Exported {written} events of workflow {args.workflow_id} to {args.output}.")
    return 0

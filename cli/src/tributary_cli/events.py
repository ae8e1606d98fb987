"""``tributary events``: follow a workflow's events live, or export them to a file.

    tributary events WORKFLOW_ID [--calls] [--mode MODE]   (short for: events follow ...)
    tributary events export WORKFLOW_ID -o FILE

``follow`` reads the gateway's event stream (``workflows.follow_events``). The
export's file (format in ``replay.source``) holds every event of the workflow from every
topic, decoded and encoded again, in timeline order; ``tributary replay
--from-file FILE`` reads it with neither Kafka nor Redis.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tributary_cli.context import CommandContext
from tributary_cli.gateway import add_connection_options
from tributary_cli.replay.command import events_on_kafka
from tributary_cli.replay.source import write_export
from tributary_cli.workflows import follow_events
from tributary_client import StreamMode

__all__ = ["ACTIONS", "register"]

ACTIONS = ("follow", "export")
"""``events`` followed by anything else is ``events follow``."""


def register(groups: Any) -> None:
    events = groups.add_parser(
        "events",
        help="follow a workflow's events live (events WORKFLOW_ID), or export them from Kafka",
        description="'tributary events WORKFLOW_ID' is short for "
        "'tributary events follow WORKFLOW_ID'.",
    )
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    follow = actions.add_parser(
        "follow",
        help="print the workflow's events from the gateway as they happen, to its last one "
        "(exit 0 if it completed, 1 if it failed or was cancelled)",
    )
    follow.add_argument("workflow_id", metavar="WORKFLOW_ID", help="the workflow")
    follow.add_argument("--calls", action="store_true", help="also the recorded LLM and tool calls")
    follow.add_argument(
        "--mode",
        choices=[mode.value for mode in StreamMode],
        default=StreamMode.LIFECYCLE.value,
        help="lifecycle: the workflow's events; tools: and its tool calls; tokens: and the "
        "live text of its LLM calls, one line per delta (marked '(live)': not in the log)",
    )
    add_connection_options(follow)
    follow.set_defaults(run=follow_events)
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

"""``tributary replay``: a workflow's run, rebuilt from its events on Kafka or in an export.

    tributary replay WORKFLOW_ID [--json] [--full]
    tributary replay [WORKFLOW_ID] --from-file FILE [--json] [--full]
    tributary replay WORKFLOW_ID --rerun [--live-from STEP] [--json]

Exit status: 0 shown; 1 no events of the workflow, or Kafka unreachable (or, with
``--rerun``, a divergence found); 2 a bad invocation or a file that is no export.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tributary_cli.context import CommandContext
from tributary_cli.replay.render import as_json, render_text
from tributary_cli.replay.source import NotAnExport, read_export
from tributary_cli.replay.timeline import build_timeline, in_timeline_order
from tributary_shared.core.events import AnyEvent

__all__ = ["events_on_kafka", "register"]


def register(groups: Any) -> None:
    replay = groups.add_parser(
        "replay",
        help="show a workflow's run (request, plan, every call, outcome) from its events",
        description="Rebuild a workflow's run from its events on Kafka (never Redis: it works "
        "after the workflow's state expired), or from a file `tributary events export` wrote.",
    )
    replay.add_argument(
        "workflow_id",
        nargs="?",
        metavar="WORKFLOW_ID",
        help="the workflow (optional with --from-file)",
    )
    replay.add_argument(
        "--from-file",
        type=Path,
        metavar="FILE",
        help="read the events from an export instead of Kafka (needs neither Kafka nor Redis)",
    )
    replay.add_argument("--json", action="store_true", help="print the timeline as JSON")
    replay.add_argument(
        "--full", action="store_true", help="show long texts whole instead of shortened"
    )
    replay.add_argument(
        "--rerun",
        action="store_true",
        help="run the workflow's calls again deterministically and report the first divergence",
    )
    replay.add_argument(
        "--live-from",
        metavar="STEP",
        help="with --rerun: from this step on, call the model and tools for real",
    )
    replay.set_defaults(run=_replay)


async def events_on_kafka(ctx: CommandContext, workflow_id: str) -> list[AnyEvent] | None:
    """The workflow's events on Kafka; None (after saying why) when there are none."""
    read = await ctx.workflow_events(workflow_id)
    if read.undecodable:
        ctx.warn(
            f"note: {read.undecodable} message(s) under the workflow's key are not events; left out"
        )
    events = [event for event in read.events if event.workflow_id == workflow_id]
    if not events:
        where = ", ".join(f"{topic}[{p}]" for topic, p in sorted(read.partitions.items()))
        ctx.warn(
            f"error: no events of workflow {workflow_id!r} on Kafka (read {where or 'no topic'}); "
            "check the id, or whether the topics' retention has removed them"
        )
        return None
    return events


async def _replay(args: argparse.Namespace, ctx: CommandContext) -> int:
    if args.live_from is not None and not args.rerun:
        ctx.warn("error: --live-from goes with --rerun")
        return 2
    if args.from_file is not None:
        loaded = _events_from_file(ctx, args.from_file, args.workflow_id)
        if isinstance(loaded, int):
            return loaded
        events = loaded
    elif args.workflow_id is None:
        ctx.warn("error: name a WORKFLOW_ID, or give --from-file FILE")
        return 2
    else:
        found = await events_on_kafka(ctx, args.workflow_id)
        if found is None:
            return 1
        events = found
    if args.rerun:
        return await _rerun(ctx, events, live_from=args.live_from, as_data=args.json)
    timeline = build_timeline(events)
    if args.json:
        ctx.say(json.dumps(as_json(timeline), indent=2, ensure_ascii=False))
    else:
        ctx.say(render_text(timeline, full=args.full).rstrip("\n"))
    return 0


def _events_from_file(
    ctx: CommandContext, path: Path, workflow_id: str | None
) -> list[AnyEvent] | int:
    try:
        exported_id, events = read_export(path)
    except NotAnExport as exc:
        ctx.warn(f"error: {exc}")
        return 2
    except OSError as exc:
        ctx.warn(f"error: cannot read {path}: {exc.strerror or exc}")
        return 2
    wanted = workflow_id or exported_id
    mine = [event for event in events if event.workflow_id == wanted]
    if not mine:
        ctx.warn(f"error: {path} holds no events of workflow {wanted!r} (it is {exported_id!r}'s)")
        return 1
    return mine


async def _rerun(
    ctx: CommandContext, events: list[AnyEvent], *, live_from: str | None, as_data: bool
) -> int:
    # Imported here: it loads the services' handlers, which nothing else here needs.
    from tributary_cli.replay import rerun as engine

    try:
        report = await engine.rerun(in_timeline_order(events), live_from=live_from)
    except engine.RerunImpossible as exc:
        ctx.warn(f"error: cannot rerun: {exc}")
        return 2
    if as_data:
        ctx.say(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        ctx.say(report.render().rstrip("\n"))
    return 0 if report.divergence is None else 1

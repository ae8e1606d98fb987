"""Workflow commands over the gateway's HTTP API (the ``tributary-client`` SDK).

    tributary run TASK [--max-steps N] [--token-budget N] [--cost-budget-usd X]
                       [--deadline-s N] [--metadata K=V ...] [--idempotency-key K]
                       [--answer REQUEST_OR_QUESTION=ANSWER ...] [--answer-all ANSWER]
                       [--no-follow] [--plain]
    tributary get WORKFLOW_ID [--json]
    tributary list [--status S ...] [--limit N] [--json]
    tributary events WORKFLOW_ID [--calls] [--mode MODE]   (in ``events``)
    tributary cancel WORKFLOW_ID [--reason R]
    tributary input WORKFLOW_ID REQUEST_ID ANSWER
    tributary delete WORKFLOW_ID

Every command takes ``--url`` and ``--api-key`` (else ``TRIBUTARY_URL`` and
``TRIBUTARY_API_KEY``); exit codes are in ``gateway``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from tributary_cli.answers import AnswerBook, chosen, parse_answer
from tributary_cli.context import CommandContext
from tributary_cli.display import Display, LiveDisplay, PlainDisplay, totals
from tributary_cli.gateway import (
    EXIT_OK,
    EXIT_WORKFLOW_FAILED,
    add_connection_options,
    with_gateway,
)
from tributary_cli.progress import InputRequest, RunProgress
from tributary_client import (
    AsyncTributary,
    StreamMode,
    Workflow,
    WorkflowStatus,
    WorkflowSummary,
)

__all__ = ["follow_events", "register"]


def register(groups: Any) -> None:
    _register_run(groups)

    get = groups.add_parser("get", help="a workflow's status, steps, usage and result")
    get.add_argument("workflow_id", metavar="WORKFLOW_ID")
    get.add_argument("--json", action="store_true", help="the workflow as JSON")
    add_connection_options(get)
    get.set_defaults(run=_get)

    listing = groups.add_parser("list", help="your tenant's workflows, newest first")
    listing.add_argument(
        "--status",
        action="append",
        choices=[status.value for status in WorkflowStatus],
        metavar="STATUS",
        help="only workflows in this status; repeatable "
        f"({', '.join(status.value for status in WorkflowStatus)})",
    )
    listing.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="at most N (default 20)"
    )
    listing.add_argument("--json", action="store_true", help="a JSON array of the workflows")
    add_connection_options(listing)
    listing.set_defaults(run=_list)

    cancel = groups.add_parser("cancel", help="cancel a running workflow")
    cancel.add_argument("workflow_id", metavar="WORKFLOW_ID")
    cancel.add_argument("--reason", help="why, recorded with the cancellation")
    add_connection_options(cancel)
    cancel.set_defaults(run=_cancel)

    answer = groups.add_parser(
        "input",
        help="answer a workflow's question (an input request it shows as awaiting_input)",
        description="Answer a workflow's request for input: REQUEST_ID as `get` or the "
        "input.requested event shows it. A request answered already or expired, or a "
        "workflow that ended, is refused with the gateway's reason (exit status 2).",
    )
    answer.add_argument("workflow_id", metavar="WORKFLOW_ID")
    answer.add_argument("request_id", metavar="REQUEST_ID", help="the request's id, as shown")
    answer.add_argument("answer", metavar="ANSWER")
    add_connection_options(answer)
    answer.set_defaults(run=_input)

    delete = groups.add_parser(
        "delete", help="delete an ended workflow: its state, log and listing entries"
    )
    delete.add_argument("workflow_id", metavar="WORKFLOW_ID")
    add_connection_options(delete)
    delete.set_defaults(run=_delete)


def _register_run(groups: Any) -> None:
    run = groups.add_parser(
        "run",
        help="start a workflow and follow it live to its answer",
        description="Start a workflow and show its progress live: the plan, each step's "
        "state, tool calls, tokens and cost; then print its answer. On a terminal the view "
        "redraws in place; otherwise (or with --plain) one line per event. When the workflow "
        "asks a question, the command asks it at the terminal, or answers it from --answer / "
        "--answer-all. Exit status: 0 the workflow completed, 1 it failed or "
        "was cancelled, 2 a usage or connection error or an error answer from the gateway.",
    )
    run.add_argument("task", metavar="TASK", help="what the workflow should do")
    run.add_argument("--max-steps", type=_positive, metavar="N")
    run.add_argument("--token-budget", type=_positive, metavar="N")
    run.add_argument("--cost-budget-usd", type=float, metavar="USD")
    run.add_argument("--deadline-s", type=_positive, metavar="SECONDS")
    run.add_argument(
        "--on-budget-exhausted",
        choices=["partial", "fail"],
        help="answer from the steps that finished, or fail, once the budget is spent",
    )
    run.add_argument(
        "--require-plan-approval",
        action="store_true",
        help="hold the plan until it is approved (a plan_approval question: approve/reject)",
    )
    run.add_argument(
        "--input-timeout-s",
        type=_positive,
        metavar="SECONDS",
        help="how long each question waits for its answer",
    )
    run.add_argument(
        "--on-input-timeout",
        metavar="fail|ANSWER",
        help="what an unanswered question gets once it times out: 'fail' fails its step, "
        "any other text is given as the answer",
    )
    run.add_argument(
        "--callback-url",
        metavar="URL",
        help="called with a signed body when the workflow ends",
    )
    run.add_argument(
        "--metadata",
        action="append",
        type=_metadata,
        default=[],
        metavar="KEY=VALUE",
        help="a label kept with the workflow (and a listing filter); repeatable",
    )
    run.add_argument("--idempotency-key", metavar="KEY", help="makes retrying the start safe")
    run.add_argument(
        "--answer",
        action="append",
        type=parse_answer,
        default=[],
        metavar="REQUEST_OR_QUESTION=ANSWER",
        help="answer the question with this request id or text; repeatable",
    )
    run.add_argument("--answer-all", metavar="ANSWER", help="answer every other question so")
    run.add_argument(
        "--no-follow", action="store_true", help="print the workflow's id and return at once"
    )
    run.add_argument("--plain", action="store_true", help="one line per event, even on a terminal")
    add_connection_options(run)
    run.set_defaults(run=_run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _metadata(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


# -- run ---------------------------------------------------------------------------------


async def _run(args: argparse.Namespace, ctx: CommandContext) -> int:
    return await with_gateway(args, ctx, lambda client: _start_and_follow(client, args, ctx))


async def _start_and_follow(
    client: AsyncTributary, args: argparse.Namespace, ctx: CommandContext
) -> int:
    started = await client.start(
        args.task,
        max_steps=args.max_steps,
        token_budget=args.token_budget,
        cost_budget_usd=args.cost_budget_usd,
        deadline_s=args.deadline_s,
        on_budget_exhausted=args.on_budget_exhausted,
        require_plan_approval=args.require_plan_approval or None,
        input_timeout_s=args.input_timeout_s,
        on_input_timeout=args.on_input_timeout,
        metadata=dict(args.metadata),
        callback_url=args.callback_url,
        idempotency_key=args.idempotency_key,
    )
    if args.no_follow:
        ctx.say(started.workflow_id)
        return EXIT_OK
    progress = RunProgress(started.workflow_id, task=args.task)
    console = None if args.plain else ctx.terminal()
    display: Display
    if console is None:
        display = PlainDisplay(ctx.say)
        ctx.say(f"Started workflow {started.workflow_id} at {client.base_url}")
    else:
        live = LiveDisplay(console)
        live.start(progress)
        display = live
    answers = AnswerBook.of(args.answer, args.answer_all)
    try:
        progress.apply_workflow(await client.get(started.workflow_id))
        # The live view shows the text the models write as it comes; one line per
        # event would drown in it, so the plain output leaves it out.
        mode = StreamMode.LIFECYCLE if console is None else StreamMode.TOKENS
        async for event in client.stream(started.workflow_id, calls=True, mode=mode):
            line = progress.apply(event)
            if event.type in ("step.completed", "step.failed"):
                # Only the workflow's state knows the cost; a step's end is when it moves.
                progress.apply_workflow(await client.get(started.workflow_id))
            display.event(progress, event.type, line)
            if event.type == "input.requested" and progress.waiting_for is not None:
                await _answer(client, ctx, display, progress, answers)
        final = await client.get(started.workflow_id)
    except BaseException:
        display.pause()
        if not _ended(progress):
            ctx.warn(
                f"Stopped following workflow {started.workflow_id}; it runs on "
                f"(tributary cancel {started.workflow_id} stops it)."
            )
        raise
    progress.apply_workflow(final)
    display.finish(progress)
    return EXIT_OK if final.status == WorkflowStatus.COMPLETED else EXIT_WORKFLOW_FAILED


def _ended(progress: RunProgress) -> bool:
    return progress.status in ("completed", "failed", "cancelled")


async def _answer(
    client: AsyncTributary,
    ctx: CommandContext,
    display: Display,
    progress: RunProgress,
    answers: AnswerBook,
) -> None:
    """Answer the workflow's question: from the flags, else from the person at the terminal."""
    request = progress.waiting_for
    assert request is not None
    answer = answers.answer_for(request)
    if answer is None:
        display.pause()
        typed = await asyncio.to_thread(ctx.ask, _prompt(request))
        display.resume(progress)
        answer = None if typed is None else chosen(request, typed)
    if answer is None:
        ctx.warn(
            f"Workflow {progress.workflow_id} waits for an answer to {request.request_id!r}: "
            f"tributary input {progress.workflow_id} {request.request_id} ANSWER"
        )
        return
    # The stream's input.answered event says it was taken, with the answer.
    await client.input(progress.workflow_id, request_id=request.request_id, answer=answer)
    progress.waiting_for = None


def _prompt(request: InputRequest) -> str:
    lines = [f"The workflow asks: {request.question}"]
    lines += [f"  {n}. {choice}" for n, choice in enumerate(request.choices, start=1)]
    if request.expires_at:
        lines.append(f"(answer before {request.expires_at})")
    return "\n".join(lines) + "\n> "


# -- the others --------------------------------------------------------------------------


async def _get(args: argparse.Namespace, ctx: CommandContext) -> int:
    async def show(client: AsyncTributary) -> int:
        workflow = await client.get(args.workflow_id)
        if args.json:
            ctx.say(workflow.model_dump_json(indent=2))
        else:
            for line in describe_workflow(workflow):
                ctx.say(line)
        return EXIT_OK

    return await with_gateway(args, ctx, show)


def describe_workflow(workflow: Workflow) -> list[str]:
    progress = RunProgress(workflow.workflow_id)
    progress.apply_workflow(workflow)
    lines = [
        f"Workflow {workflow.workflow_id}: {workflow.status} ({totals(progress)})",
        f"Task: {workflow.task}",
        f"Created {workflow.created_at.isoformat()}, updated {workflow.updated_at.isoformat()}",
    ]
    for step in sorted(workflow.steps, key=lambda s: s.index):
        line = (
            f"  {step.index + 1}. {step.title}: {step.status}, attempt {step.attempt}, "
            f"{step.usage.total_tokens} tokens"
        )
        if step.error is not None:
            line += f" ({step.error.code}: {step.error.message})"
        lines.append(line)
    if workflow.error is not None:
        lines.append(f"Error: {workflow.error.code}: {workflow.error.message}")
    if workflow.result is not None:
        lines += ["Partial answer:" if workflow.partial else "Answer:", workflow.result]
    return lines


async def _list(args: argparse.Namespace, ctx: CommandContext) -> int:
    async def show(client: AsyncTributary) -> int:
        found: list[WorkflowSummary] = []
        # A filtered page may hold fewer than asked for while more follow: read on.
        async for summary in client.iter_workflows(
            page_size=min(args.limit, 100), status=args.status or ()
        ):
            found.append(summary)
            if len(found) >= args.limit:
                break
        if args.json:
            ctx.say(json.dumps([summary.model_dump(mode="json") for summary in found], indent=2))
            return EXIT_OK
        for summary in found:
            created = summary.created_at.strftime("%Y-%m-%d %H:%M:%S")
            ctx.say(f"{summary.workflow_id}  {summary.status!s:<12}  {created}  {summary.task}")
        if not found:
            ctx.say("No workflows.")
        return EXIT_OK

    return await with_gateway(args, ctx, show)


async def _cancel(args: argparse.Namespace, ctx: CommandContext) -> int:
    async def cancel(client: AsyncTributary) -> int:
        cancelled = await client.cancel(args.workflow_id, reason=args.reason)
        ctx.say(f"Cancelled workflow {cancelled.workflow_id}: {cancelled.reason}")
        return EXIT_OK

    return await with_gateway(args, ctx, cancel)


async def _input(args: argparse.Namespace, ctx: CommandContext) -> int:
    async def answer(client: AsyncTributary) -> int:
        await client.input(args.workflow_id, request_id=args.request_id, answer=args.answer)
        ctx.say(f"Answered request {args.request_id} of workflow {args.workflow_id}.")
        return EXIT_OK

    return await with_gateway(args, ctx, answer)


async def _delete(args: argparse.Namespace, ctx: CommandContext) -> int:
    async def delete(client: AsyncTributary) -> int:
        await client.delete(args.workflow_id)
        ctx.say(f"Deleted workflow {args.workflow_id}.")
        return EXIT_OK

    return await with_gateway(args, ctx, delete)


# -- events (registered by the events group) ---------------------------------------------


async def follow_events(args: argparse.Namespace, ctx: CommandContext) -> int:
    """Print a workflow's events as they come, one line each, to its last one."""

    async def follow(client: AsyncTributary) -> int:
        progress = RunProgress(args.workflow_id)
        async for event in client.stream(args.workflow_id, calls=args.calls, mode=args.mode):
            line = progress.apply(event)
            delta = event.token_delta()
            if delta is not None:
                who = progress.step_label(delta.step_id) if delta.step_id else delta.role
                line = f"{event.type:<19} {who} #{delta.call}: {delta.text!r}"
            if line is not None:
                ctx.say(f"{event.id or '(live)':<16} {line}")
        return EXIT_OK if progress.status == "completed" else EXIT_WORKFLOW_FAILED

    return await with_gateway(args, ctx, follow)

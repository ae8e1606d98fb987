"""LLM calls on behalf of one workflow: routed to a model and paid from its budget.

Every call reserves its worst case from the workflow's budget first (the
estimated prompt plus the completion cap it is sent with, priced at the most
expensive model it may fall back to), held for ``TRIBUTARY_BUDGET_HOLD_S`` at
most, then settles the real usage under the reservation's id. The usage is
priced at the model the endpoint names as having served the call, matched to
the price table even when it is a dated variant (``pricing.price_of``); a
served model with no price is charged at the price that was reserved.

When the ledger refuses a call, the call never starts:

- the budget is **exhausted** (the call cannot fit even alone, or the budget
  ran out before): ``BudgetExceeded`` is raised at once, and the first such
  refusal's ``budget.exhausted`` is published (each later refusal publishes
  the same event again, through the outbox: see ``_announce``);
- only other calls' reservations, still in flight, stand in the way
  (``BudgetExceeded.busy``): the budget is not used up, so the call waits,
  with growing pauses, and tries again while the workflow is not exhausted,
  for at most the hold time, after which every hold that stood in the way has
  been settled or has lapsed. If other calls still hold the rest then, the
  busy refusal is raised (code ``budget_busy``: the call stops, the workflow
  is not marked out of budget).

A workflow whose budget was never opened gets no call at all
(``BudgetNotOpened``, a fatal error).

Every call carries the workflow's ``CallContext``: the client waits out a
failing endpoint no longer than the workflow's deadline. While it waits, the
workflow hears of it: each wait notice becomes an ``llm.waiting`` event,
noted in the outbox, appended to the workflow's log and published
(``Notify``). A notice never holds the call up for long: one that cannot be
written now (Redis away) is dropped, and one written but not published yet
goes out with the outbox's sweep. A notice the log refuses because the
workflow has ended stops the call.

An agent's or the synthesizer's call of a workflow whose tokens someone
follows (an event stream with ``mode=tokens``; ``DeltaRelay.listened``) is
streamed from the provider, whatever ``TRIBUTARY_LLM_STREAM`` says, and its
text goes out as live ``llm.delta`` events while it arrives (``DeltaRelay``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from tributary_shared.core.budget import MICRO_USD, Reservation
from tributary_shared.core.completions import (
    CallContext,
    Completion,
    DeltaListener,
    Message,
    ModelWait,
    Role,
    TryListener,
    WaitListener,
)
from tributary_shared.core.deltas import DELTA_ROLES
from tributary_shared.core.errors import BudgetExceeded, TributaryError
from tributary_shared.core.events import (
    BudgetExhausted,
    Complexity,
    LLMTry,
    LLMWaiting,
    TokenUsage,
)
from tributary_shared.core.ports import BudgetLedger
from tributary_shared.runtime import metrics
from tributary_shared.runtime.budget.pricing import (
    estimate_prompt_tokens,
    settled_micro_usd,
    worst_case_micro_usd,
)
from tributary_shared.runtime.call_recorder import CallRecorder, Record
from tributary_shared.runtime.delta_relay import CallDeltas, DeltaRelay
from tributary_shared.runtime.llm.routing import model_chain, model_served_by
from tributary_shared.runtime.llm.structured import OutputT, complete_structured
from tributary_shared.runtime.settings import BudgetSettings, LLMSettings, ModelPrice

__all__ = ["Announce", "CompletionClient", "MeteredLLM", "Notify", "WorkflowLLMs"]

log = logging.getLogger(__name__)

Announce = Callable[[BudgetExhausted], Awaitable[None]]
Notify = Callable[[LLMWaiting], Awaitable[bool]]
"""Logs and publishes a notice that a call of the workflow waits for its model;
False when the workflow has ended (nothing was logged)."""

# A notice is worth less than the retry it announces: one that cannot go out
# within this long (Redis or Kafka away too) is given up.
_NOTICE_TIMEOUT_S = 5.0

# Pauses between tries of a reservation that other calls' holds refused: short
# at first (most calls settle within seconds), doubling, jittered so that the
# waiting steps of one workflow do not all come back at once.
_FIRST_PAUSE_S = 0.1
_LONGEST_PAUSE_S = 2.0


class CompletionClient(Protocol):
    """What a metered call needs of the LLM client (``LLMClient``)."""

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        models: Sequence[str] | None = None,
        max_tokens: int | None = None,
        context: CallContext | None = None,
        on_wait: WaitListener | None = None,
        on_try: TryListener | None = None,
        on_delta: DeltaListener | None = None,
        stream: bool | None = None,
    ) -> Completion: ...

    async def close(self) -> None: ...


class MeteredLLM:
    def __init__(
        self,
        llm: CompletionClient,
        ledger: BudgetLedger,
        *,
        settings: LLMSettings,
        budgets: BudgetSettings,
        workflow_id: str,
        tenant_id: str,
        announce: Announce,
        complexity: Complexity | None = None,
        deadline_at: float | None = None,
        step_id: str | None = None,
        attempt: int = 1,
        notify: Notify | None = None,
        record: Record | None = None,
        deltas: DeltaRelay | None = None,
    ) -> None:
        self._llm = llm
        self._ledger = ledger
        self._deltas = deltas
        self._calls: dict[Role, int] = {}
        self._attempt = attempt
        self._settings = settings
        self._prices: Mapping[str, ModelPrice] = budgets.model_prices
        self._hold_s = budgets.budget_hold_s
        self._workflow_id = workflow_id
        self._tenant_id = tenant_id
        self._announcer = announce
        self._complexity = complexity
        self._context = CallContext(
            workflow_id, tenant_id, deadline_at, step_id=step_id, attempt=attempt
        )
        self._step_id = step_id
        self._notify = notify
        self.recorder = (
            CallRecorder(
                record,
                workflow_id=workflow_id,
                tenant_id=tenant_id,
                step_id=step_id,
                attempt=attempt,
            )
            if record is not None
            else None
        )
        """Records the scope's calls (None: they are not recorded)."""

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        iteration: int | None = None,
    ) -> Completion:
        models = model_chain(self._settings, role, complexity=self._complexity, iteration=iteration)
        cap = self._settings.max_completion_tokens
        worst = TokenUsage(
            prompt_tokens=estimate_prompt_tokens(messages, tools), completion_tokens=cap
        )
        reservation = await self._reserve(
            role,
            tokens=worst.total_tokens,
            micro_usd=worst_case_micro_usd(self._prices, models, worst),
        )
        completion: Completion | None = None
        failure: TributaryError | None = None
        tries: list[LLMTry] = []
        started_at = time.time()
        live = await self._live_text(role, iteration)
        streaming: dict[str, Any] = {} if live is None else {"on_delta": live.add, "stream": True}
        try:
            completion = await self._llm.complete(
                role=role,
                messages=messages,
                tools=tools,
                response_format=response_format,
                models=models,
                max_tokens=cap,
                context=replace(self._context, iteration=iteration),
                on_wait=self._waiting_for(role) if self._notify is not None else None,
                on_try=tries.append if live is None else _both(tries.append, live),
                **streaming,
            )
            return completion
        except TributaryError as error:
            failure = error
            raise
        finally:
            if live is not None:
                await live.close()  # the whole text is out before the outcome is written
            usage = completion.usage if completion else TokenUsage()
            cost = (
                settled_micro_usd(self._prices, served=completion.model, models=models, usage=usage)
                if completion
                else 0
            )
            if completion is not None:
                served = model_served_by(self._settings, models, completion.deployment)
                deployment = completion.deployment or served
                metrics.LLM_COST_USD_TOTAL.labels(served, deployment, role).inc(cost / MICRO_USD)
            await self._ledger.settle(
                self._workflow_id, reservation.reservation_id, usage=usage, micro_usd=cost
            )
            if self.recorder is not None and (completion is not None or failure is not None):
                await self.recorder.llm_call(
                    role=role,
                    iteration=iteration,
                    messages=messages,
                    tools=tools,
                    response_format=response_format,
                    models=models,
                    max_tokens=cap,
                    started_at=started_at,
                    completion=completion,
                    error=failure,
                    tries=tries,
                )

    async def _live_text(self, role: Role, iteration: int | None) -> CallDeltas | None:
        """The call's live deltas, when its text is worth streaming now; numbers the
        scope's calls of each role as the call records do."""
        call = self._calls[role] = self._calls.get(role, 0) + 1
        if self._deltas is None or role not in DELTA_ROLES:
            return None
        if not await self._deltas.listened(self._workflow_id):
            return None
        return self._deltas.open(
            workflow_id=self._workflow_id,
            role="agent" if role == "agent" else "synthesizer",
            call=call,
            step_id=self._step_id,
            attempt=self._attempt,
            iteration=iteration,
        )

    def _waiting_for(self, role: Role) -> WaitListener:
        async def waiting(wait: ModelWait) -> bool:
            assert self._notify is not None
            event = LLMWaiting(
                workflow_id=self._workflow_id,
                tenant_id=self._tenant_id,
                role=role,
                step_id=self._step_id,
                model=wait.model,
                deployment=wait.deployment,
                error=wait.error.to_info() if wait.error is not None else None,
                attempt=wait.attempt,
                waiting_since=datetime.fromtimestamp(wait.waiting_since, UTC),
                next_try_at=(
                    datetime.fromtimestamp(wait.next_try_at, UTC)
                    if wait.next_try_at is not None
                    else None
                ),
            )
            try:
                async with asyncio.timeout(_NOTICE_TIMEOUT_S):
                    return await self._notify(event)
            except Exception:
                log.warning("an llm.waiting notice could not go out; the call goes on")
                return True

        return waiting

    async def _announce(self, event: BudgetExhausted) -> None:
        """Publish the budget's exhaustion event; the refusal stands either way.

        Every refusal for good carries the same event (one id), already in the
        workflow's log: announcing it through the outbox on each one means a
        publish lost to a crash or an outage is made by the next refusal or the
        planner's sweep, and a repeat is recognised as a duplicate. A publish
        that fails here must not turn the refusal into a different error.
        """
        try:
            await self._announcer(event)
        except Exception:
            log.warning("the budget.exhausted event could not be published now; it is noted")

    async def _reserve(self, role: Role, *, tokens: int, micro_usd: int) -> Reservation:
        """Reserve, waiting while only other calls' holds are in the way (see the module)."""
        give_up_at = time.monotonic() + self._hold_s
        pause_s = _FIRST_PAUSE_S
        while True:
            try:
                return await self._ledger.reserve(
                    self._workflow_id,
                    tenant_id=self._tenant_id,
                    tokens=tokens,
                    micro_usd=micro_usd,
                    hold_s=self._hold_s,
                )
            except BudgetExceeded as refused:
                left_s = give_up_at - time.monotonic()
                if refused.busy and left_s > 0:
                    await asyncio.sleep(min(left_s, pause_s * (0.5 + random.random() / 2)))
                    pause_s = min(_LONGEST_PAUSE_S, pause_s * 2)
                    continue
                if refused.busy:
                    log.warning(
                        "other LLM calls held the workflow's budget for %.0fs; the call stops",
                        self._hold_s,
                    )
                else:
                    metrics.BUDGET_EXHAUSTED_TOTAL.labels(role).inc()
                if refused.announcement is not None:
                    await self._announce(refused.announcement)
                raise

    async def structured(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        output: type[OutputT],
        schema_name: str,
    ) -> tuple[OutputT, TokenUsage]:
        async def once(
            conversation: Sequence[Message], response_format: dict[str, Any]
        ) -> Completion:
            return await self.complete(
                role=role, messages=conversation, response_format=response_format
            )

        return await complete_structured(
            once, messages=messages, output=output, schema_name=schema_name
        )


def _both(tries: TryListener, live: CallDeltas) -> TryListener:
    def told(attempt: LLMTry) -> None:
        tries(attempt)
        live.try_ended()

    return told


class WorkflowLLMs:
    """Hands out a ``MeteredLLM`` per workflow over the process-wide client."""

    def __init__(
        self,
        llm: CompletionClient,
        ledger: BudgetLedger,
        *,
        settings: LLMSettings,
        budgets: BudgetSettings,
        announce: Announce,
        notify: Notify | None = None,
        record: Record | None = None,
        deltas: DeltaRelay | None = None,
    ) -> None:
        """``deltas``: sends the live text of calls whose workflow's tokens are
        followed (None: no call streams for that reason)."""
        self._llm = llm
        self._ledger = ledger
        self._deltas = deltas
        self._settings = settings
        self._budgets = budgets
        self._announce = announce
        self._notify = notify
        self._record = record

    def for_workflow(
        self,
        workflow_id: str,
        tenant_id: str,
        *,
        deadline_at: float | None,
        complexity: Complexity | None = None,
        step_id: str | None = None,
        attempt: int = 1,
    ) -> MeteredLLM:
        """The workflow's LLM access; its calls wait out a failing endpoint no longer
        than ``deadline_at`` (epoch seconds; None: only their patience bounds them)."""
        return MeteredLLM(
            self._llm,
            self._ledger,
            settings=self._settings,
            budgets=self._budgets,
            workflow_id=workflow_id,
            tenant_id=tenant_id,
            announce=self._announce,
            complexity=complexity,
            deadline_at=deadline_at,
            step_id=step_id,
            attempt=attempt,
            notify=self._notify,
            record=self._record,
            deltas=self._deltas,
        )

    async def close(self) -> None:
        if self._deltas is not None:
            await self._deltas.close()
        await self._llm.close()

"""The person of a rerun: each input request gets the answer the recording holds.

A rerun never waits for a person. Each input request the rerun makes (an agent's
``ask_human`` question, a plan or step approval) is matched with the recorded
request of the same kind and step, in the order they were made (``asked``): one
that asks something else (another question, other choices) or one the recording
does not hold is a divergence.

When nothing is left to deliver (``settle``), each open request gets its recorded
answer (``input.answered``), whatever its source: an answer over HTTP or Kafka is
given as the gateway and the planner give it (``runtime.inputs``), a timeout's
default by expiring the request, so that the rerun's own default is held to the
recorded one. A recorded request that expired unanswered (its step, or for the
plan the workflow, failed with ``input_timeout``) expires again. A rejection is
an answer like any other and is given again.

A request the recording leaves open (the workflow still waited when its events
were read) stops the rerun there (``left_open``): that is where the recording
ends, not a divergence. A step run live (``--live-from``) is not compared: its
requests get the recorded answers of its step in order while they take them,
and one with no recorded answer it takes stops the rerun the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from tributary_cli.replay.pipeline import Pipeline
from tributary_cli.replay.report import Divergence, unified_diff
from tributary_cli.replay.substitutes import RerunState
from tributary_shared.core.errors import InputTimedOut
from tributary_shared.core.events import InputAnswered, InputRequested, StepFailed, WorkflowFailed
from tributary_shared.core.records import InputRequest
from tributary_shared.runtime.inputs import InputRefused

__all__ = ["OpenRequest", "RecordedAnswers"]


@dataclass(frozen=True)
class OpenRequest:
    """A recorded input request nobody had answered when the events were read."""

    request_id: str
    kind: str
    step_id: str | None
    question: str
    choices: tuple[str, ...] | None

    @classmethod
    def of(cls, requested: InputRequested) -> OpenRequest:
        return cls(
            requested.request_id,
            requested.kind,
            requested.step_id,
            requested.question,
            requested.choices,
        )

    def describe(self) -> str:
        where = f" of step {self.step_id}" if self.step_id else ""
        choices = f" [{' | '.join(self.choices)}]" if self.choices else ""
        return f"{self.kind} {self.request_id}{where}: {self.question!r}{choices}"


class RecordedAnswers:
    """Matches the rerun's input requests with the recorded ones and answers them."""

    def __init__(self, state: RerunState) -> None:
        self._state = state
        self._recording = state.recording
        self._asked: dict[tuple[str, str | None], int] = {}
        self._matched: dict[str, InputRequested] = {}
        """The recorded request each of the rerun's requests stands for, by its id."""
        self._unanswerable: dict[str, InputRequested] = {}
        """A live step's requests the recording has no request for, by id."""
        self.answers_given = 0
        self.left_open: OpenRequest | None = None

    def asked(self, requested: InputRequested) -> None:
        """The rerun made ``requested``: raises ``Diverged`` unless the recording made
        the same request at this point."""
        key = (requested.kind, requested.step_id)
        number = self._asked.get(key, 0)
        self._asked[key] = number + 1
        recorded = self._recorded_of(key)
        actual = _render_request(requested)
        if requested.kind != "plan_approval" and self._state.is_live(
            "agent", requested.step_id or ""
        ):
            if number < len(recorded):
                self._matched[requested.request_id] = recorded[number]
            else:
                self._unanswerable[requested.request_id] = requested
            return
        if number >= len(recorded):
            expected = "(no such input request was recorded)"
            raise self._diverged(requested, "extra input request", expected, actual)
        expected = _render_request(recorded[number])
        if expected != actual:
            raise self._diverged(requested, "input request", expected, actual)
        self._matched[requested.request_id] = recorded[number]

    def as_recorded(self, text: str) -> str:
        """``text`` with the rerun's request ids replaced by the recorded ones they stand
        for (an id names the attempt that asked, which a crash may have made differ)."""
        for rerun_id, recorded in self._matched.items():
            text = text.replace(rerun_id, recorded.request_id)
        return text

    def missing(self, step_id: str | None) -> Divergence | None:
        """A recorded request of the step (None: of the plan) the rerun never made."""
        for kind in ("plan_approval", "step_approval", "question"):
            recorded = self._recorded_of((kind, step_id))
            unasked = recorded[self._asked.get((kind, step_id), 0) :]
            if unasked:
                expected = _render_request(unasked[0])
                return Divergence(
                    role=_role_of(unasked[0]),
                    step_id=step_id,
                    iteration=None,
                    kind="missing input request",
                    expected=expected,
                    actual="(the rerun made no such input request)",
                    diff=unified_diff(expected, ""),
                )
        return None

    async def settle(self, pipeline: Pipeline) -> bool:
        """Give each open request of the rerun its recorded answer (see the module);
        whether any was given. Raises ``Diverged`` when one cannot be given."""
        self.left_open = None
        record = await pipeline.store.get_workflow(self._recording.workflow_id)
        if record is None or record.status.terminal:
            return False
        settled = False
        for request in sorted(record.open_inputs, key=lambda r: r.requested_at):
            recorded = self._matched.get(request.request_id)
            if recorded is None:
                unanswerable = self._unanswerable.get(request.request_id)
                if unanswerable is not None:
                    self.left_open = OpenRequest.of(unanswerable)
                continue  # asked() matched every other request it let through
            answered = self._recording.input_answers.get(recorded.request_id)
            if answered is None and not self._expired_unanswered(recorded):
                self.left_open = OpenRequest.of(recorded)
                continue
            if answered is None or answered.source == "timeout":
                await self._expire(pipeline, request, recorded, answered)
            elif not await self._answer(pipeline, request, recorded, answered):
                continue
            self.answers_given += 1
            settled = True
        return settled

    async def _answer(
        self,
        pipeline: Pipeline,
        request: InputRequest,
        recorded: InputRequested,
        answered: InputAnswered,
    ) -> bool:
        """Whether the recorded answer was given (a live step's request may refuse it)."""
        try:
            await pipeline.inputs.answer(
                self._recording.workflow_id,
                request_id=request.request_id,
                answer=answered.answer,
                source=answered.source,
            )
        except InputRefused as refused:
            if self._state.is_live("agent", request.step_id or ""):
                self.left_open = OpenRequest.of(recorded)  # a live question, otherwise
                return False
            raise self._diverged(
                recorded, "answer", answered.answer, f"(refused: {refused.message})"
            ) from None
        return True

    async def _expire(
        self,
        pipeline: Pipeline,
        request: InputRequest,
        recorded: InputRequested,
        answered: InputAnswered | None,
    ) -> None:
        expected = (
            f"{answered.answer} (the timeout's default)"
            if answered is not None
            else "(expired unanswered: the step failed)"
        )
        if request.expires_at is None:
            actual = "(the rerun's request never expires)"
            raise self._diverged(recorded, "answer", expected, actual)
        after_expiry = (request.expires_at + timedelta(seconds=1)).timestamp()
        workflow_id = self._recording.workflow_id
        await pipeline.inputs.expire(workflow_id, request.request_id, now=after_expiry)
        record = await pipeline.store.get_workflow(workflow_id)
        now = record.input_request(request.request_id) if record is not None else None
        given = now.answer if now is not None else None
        actual = (
            f"{given} (the timeout's default)"
            if given is not None
            else "(expired unanswered: the step failed)"
        )
        if actual != expected:
            raise self._diverged(recorded, "answer", expected, actual)

    def _expired_unanswered(self, recorded: InputRequested) -> bool:
        """Whether the recorded request expired without a default answer."""
        code = InputTimedOut.default_code
        if recorded.kind == "plan_approval":
            final = self._recording.final
            return isinstance(final, WorkflowFailed) and final.error.code == code
        outcome = self._recording.outcomes.get(recorded.step_id or "")
        return (
            isinstance(outcome, StepFailed)
            and outcome.error.code == code
            and recorded.request_id in outcome.error.message
        )

    def _recorded_of(self, key: tuple[str, str | None]) -> Sequence[InputRequested]:
        return [r for r in self._recording.input_requests if (r.kind, r.step_id) == key]

    def _diverged(
        self, request: InputRequested, kind: str, expected: str, actual: str
    ) -> BaseException:
        iteration = (
            self._state.last_iteration.get(request.step_id or "")
            if request.kind == "question"
            else None
        )
        return self._state.differed(
            role=_role_of(request),
            step_id=request.step_id,
            iteration=iteration,
            kind=kind,
            expected=expected,
            actual=actual,
        )


def _role_of(request: InputRequested) -> str:
    return "planner" if request.kind == "plan_approval" else "agent"


def _render_request(request: InputRequested) -> str:
    lines = [f"{request.kind}: {request.question}"]
    if request.choices is not None:
        lines.append(f"choices: {' | '.join(request.choices)}")
    return "\n".join(lines)

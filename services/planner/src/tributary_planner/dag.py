"""Plans as DAGs, pure: validation and which steps can run now.

A step may depend on earlier or later steps of the same plan, as long as the
dependencies form no cycle. Steps without dependencies start at once; a step
is released when every step it depends on has completed, and is skipped
(failed) as soon as one of them fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tributary_shared.core.records import StepRecord
from tributary_shared.core.status import StepStatus

DEPENDENCY_FAILED = "dependency_failed"
"""The error code of a step skipped because a step it depends on failed."""


def dependency_problems(dependencies: Mapping[int, Sequence[int]], count: int) -> list[str]:
    """Problems of a plan's dependency graph; steps are numbered 1..count."""
    problems: list[str] = []
    for step, needs in sorted(dependencies.items()):
        for need in needs:
            if need == step:
                problems.append(f"step {step} depends on itself")
            elif not 1 <= need <= count:
                problems.append(f"step {step} depends on step {need}, which does not exist")
    if not problems:
        cycle = find_cycle(dependencies)
        if cycle:
            problems.append("the dependencies form a cycle: " + " -> ".join(map(str, cycle)))
    return problems


def find_cycle(dependencies: Mapping[int, Sequence[int]]) -> list[int] | None:
    """One cycle as a path that returns to its start, or None."""
    visiting: list[int] = []
    done: set[int] = set()

    def visit(node: int) -> list[int] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for need in dependencies.get(node, ()):
            found = visit(need)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(dependencies):
        found = visit(start)
        if found:
            return found
    return None


def releasable(steps: Sequence[StepRecord]) -> list[StepRecord]:
    """Waiting steps whose dependencies have all completed."""
    status = {step.step_id: step.status for step in steps}
    return [
        step
        for step in steps
        if step.status is StepStatus.WAITING
        and all(status.get(need) is StepStatus.COMPLETED for need in step.depends_on)
    ]


def doomed(steps: Sequence[StepRecord]) -> list[StepRecord]:
    """Waiting steps that depend on a failed step: they can never run."""
    status = {step.step_id: step.status for step in steps}
    return [
        step
        for step in steps
        if step.status is StepStatus.WAITING
        and any(status.get(need) is StepStatus.FAILED for need in step.depends_on)
    ]


def released_before(steps: Sequence[StepRecord], cause: str) -> list[StepRecord]:
    """Dependents of ``cause`` released but not yet started.

    Their dispatch may never have left (a crash between the release and its
    publish): a redelivered outcome of ``cause`` sends it again.
    """
    return [
        step for step in steps if step.status is StepStatus.PENDING and cause in step.depends_on
    ]


def skipped_before(steps: Sequence[StepRecord], cause: str) -> list[StepRecord]:
    """Dependents of ``cause`` already skipped: their outcome is sent again likewise."""
    return [
        step
        for step in steps
        if step.status is StepStatus.FAILED
        and cause in step.depends_on
        and step.error is not None
        and step.error.code == DEPENDENCY_FAILED
    ]

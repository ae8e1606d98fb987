"""Entry point: ``python -m tributary_synthesizer``."""

from __future__ import annotations

from tributary_shared.core.topics import STEP_RESULTS
from tributary_shared.runtime.worker import WorkerResources, WorkerSpec, run_worker
from tributary_synthesizer.service import Synthesizer


def build(resources: WorkerResources) -> Synthesizer:
    return Synthesizer(resources, llms=resources.workflow_llms())


SPEC = WorkerSpec(
    service="synthesizer",
    group_id="tributary-synthesizer",
    topics=(STEP_RESULTS.name,),
    build=build,
)

if __name__ == "__main__":
    run_worker(SPEC)

"""Entry point: ``python -m tributary_synthesizer``."""

from __future__ import annotations

from tributary_shared.core.topology import subscription
from tributary_shared.runtime.worker import WorkerResources, WorkerSpec, run_worker
from tributary_synthesizer.service import Synthesizer


def build(resources: WorkerResources) -> Synthesizer:
    return Synthesizer(resources.ports, llms=resources.workflow_llms())


SERVICE = "synthesizer"
# Group and topics as the topology declares them (tributary_shared.core.topology).
SUBSCRIPTION = subscription(SERVICE)
SPEC = WorkerSpec(
    service=SERVICE,
    group_id=SUBSCRIPTION.group_id,
    topics=SUBSCRIPTION.topics,
    build=build,
)

if __name__ == "__main__":
    run_worker(SPEC)

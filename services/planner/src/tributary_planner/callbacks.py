"""The callbacks' deliverer, run in the planner's process with a consumer group of its
own (``ServiceRole.hosted_by``): it needs no model, and the planner already runs the
sweeps that keep workflows moving."""

from __future__ import annotations

from tributary_shared.core.netguard import address_and_port, allow_exact, public_only
from tributary_shared.core.topology import subscription
from tributary_shared.runtime.callbacks.deliverer import CallbackDeliverer
from tributary_shared.runtime.callbacks.sender import CallbackSender
from tributary_shared.runtime.callbacks.settings import CallbackSettings
from tributary_shared.runtime.settings import load_settings
from tributary_shared.runtime.worker import WorkerResources, WorkerSpec

__all__ = ["CALLBACKS_SPEC", "build_deliverer"]


def build_deliverer(resources: WorkerResources) -> CallbackDeliverer:
    settings = load_settings(CallbackSettings)
    if resources.callbacks is None:
        raise RuntimeError("the callbacks' deliverer needs a callback store")
    allowed = [address_and_port(target) for target in settings.allowed_targets]
    policy = allow_exact(*allowed) if allowed else public_only
    return CallbackDeliverer(
        store=resources.ports.store,
        callbacks=resources.callbacks,
        sender=CallbackSender(timeout_s=settings.timeout_s, policy=policy),
        settings=settings,
    )


SERVICE = "callbacks"
SUBSCRIPTION = subscription(SERVICE)
CALLBACKS_SPEC = WorkerSpec(
    service=SERVICE,
    group_id=SUBSCRIPTION.group_id,
    topics=SUBSCRIPTION.topics,
    build=build_deliverer,
)

"""The runtime: the adapters that carry out the core's decisions.

Kafka (consumer runtime, publisher, dead letters), Redis (workflow store,
budget ledger, call history, cancellation signal), the LLM client over the
``openai`` SDK, settings, logging, metrics and the assembly of a worker.

The subpackages (``kafka``, ``llm``, ``state``, ``budget``) state their own
surface. The names below come from the top-level modules and are loaded on
first use (PEP 562), not when the package is imported: the modules need
different third-party packages (``worker`` pulls in the LLM client, and with it
``openai``), and an image installs only what its service imports. The gateway,
for one, imports ``runtime.settings`` and must not need the LLM extra for it.
(``redis_client`` is left out: the function shares its module's name, and the
module, once imported, would shadow it as an attribute of this package.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tributary_shared.runtime.control import WorkflowControl, deadline_at
    from tributary_shared.runtime.logs import configure_logging, step_context, workflow_context
    from tributary_shared.runtime.settings import (
        BudgetSettings,
        ConfigurationError,
        ConsumerSettings,
        HttpSettings,
        KafkaSettings,
        LLMSettings,
        RedactionSettings,
        RedisSettings,
        TracingSettings,
        WorkflowDefaults,
        load_settings,
    )
    from tributary_shared.runtime.tracing import configure_tracing
    from tributary_shared.runtime.worker import (
        WorkerLogic,
        WorkerResources,
        WorkerSpec,
        build_app,
        run_worker,
    )

__all__ = [
    "BudgetSettings",
    "ConfigurationError",
    "ConsumerSettings",
    "HttpSettings",
    "KafkaSettings",
    "LLMSettings",
    "RedactionSettings",
    "RedisSettings",
    "TracingSettings",
    "WorkerLogic",
    "WorkerResources",
    "WorkerSpec",
    "WorkflowControl",
    "WorkflowDefaults",
    "build_app",
    "configure_logging",
    "configure_tracing",
    "deadline_at",
    "load_settings",
    "run_worker",
    "step_context",
    "workflow_context",
]

#: Exported name -> the module (under this package) that defines it.
_HOME: dict[str, str] = {
    "WorkflowControl": "control",
    "deadline_at": "control",
    "configure_logging": "logs",
    "step_context": "logs",
    "workflow_context": "logs",
    "configure_tracing": "tracing",
    "BudgetSettings": "settings",
    "ConfigurationError": "settings",
    "ConsumerSettings": "settings",
    "HttpSettings": "settings",
    "KafkaSettings": "settings",
    "LLMSettings": "settings",
    "RedactionSettings": "settings",
    "RedisSettings": "settings",
    "TracingSettings": "settings",
    "WorkflowDefaults": "settings",
    "load_settings": "settings",
    "WorkerLogic": "worker",
    "WorkerResources": "worker",
    "WorkerSpec": "worker",
    "build_app": "worker",
    "run_worker": "worker",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""Which settings classes the page documents, and which services read each.

The classes live in the services' packages and in the local stack's, which
this package does not depend on: they are found by walking those packages and
named by their dotted path, so generating the page needs the whole workspace
installed (``make setup``) while the admin CLI, say, does not.

:data:`READERS` says which services load each settings class. Every settings
class of the services' packages must be listed there: a new class without an
entry stops the generator (and fails the tests) until someone says who reads it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
from collections.abc import Iterator
from functools import cache
from typing import Any

from pydantic_settings import BaseSettings

from tributary_shared.core.topology import deployed_roles
from tributary_shared.runtime.settings import TributarySettings

__all__ = [
    "ALL_SERVICES",
    "READERS",
    "SETTINGS_PACKAGES",
    "STACK_CONFIG",
    "WORKERS",
    "UnlistedSettingsError",
    "qualified_name",
    "settings_classes",
    "stack_config",
    "stack_wiring",
]

#: Packages whose settings classes make up the services' configuration.
SETTINGS_PACKAGES = (
    "tributary_shared",
    "tributary_gateway",
    "tributary_planner",
    "tributary_agent_runner",
    "tributary_synthesizer",
)

ALL_SERVICES = tuple(role.service for role in deployed_roles())
WORKERS = tuple(role.service for role in deployed_roles() if role.group_id is not None)

#: Settings class -> the services that load it at start (``load_settings(cls)`` or
#: ``cls()``). A bad value of any of its variables stops each of these services.
READERS: dict[str, tuple[str, ...]] = {
    "tributary_shared.runtime.settings.KafkaSettings": ALL_SERVICES,
    "tributary_shared.runtime.settings.RedisSettings": ALL_SERVICES,
    "tributary_shared.runtime.settings.HttpSettings": ALL_SERVICES,
    "tributary_shared.runtime.settings.RedactionSettings": ALL_SERVICES,
    "tributary_shared.runtime.settings.TracingSettings": ALL_SERVICES,
    "tributary_shared.runtime.settings.ConsumerSettings": WORKERS,
    "tributary_shared.runtime.settings.LLMSettings": WORKERS,
    "tributary_shared.runtime.settings.BudgetSettings": (*WORKERS, "gateway"),
    "tributary_shared.runtime.settings.AdmissionSettings": WORKERS,
    "tributary_shared.runtime.settings.WorkflowDefaults": ("gateway", "planner"),
    "tributary_shared.runtime.callbacks.settings.CallbackSettings": ("gateway", "planner"),
    "tributary_gateway.settings.GatewaySettings": ("gateway",),
    "tributary_gateway.settings.TenantLimitSettings": ("gateway",),
    "tributary_planner.settings.PlannerSettings": ("planner",),
    "tributary_shared.runtime.failpoints.FailpointSettings": ("planner", "agent-runner"),
    "tributary_agent_runner.settings.AgentSettings": ("agent-runner",),
    "tributary_agent_runner.tools.mcp_config.McpSettings": ("agent-runner",),
    "tributary_agent_runner.tools.web_search.WebSearchSettings": ("agent-runner",),
}

#: The local stack's settings (``make up``, ``make test``), documented in a section of its own.
STACK_CONFIG = "tributary_devstack.config.StackConfig"


class UnlistedSettingsError(ValueError):
    """A settings class was found that :data:`READERS` does not mention."""


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _modules(package: str) -> Iterator[types.ModuleType]:
    root = importlib.import_module(package)
    yield root
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        yield importlib.import_module(info.name)


@cache
def settings_classes() -> tuple[type[BaseSettings], ...]:
    """Every pydantic-settings class defined in :data:`SETTINGS_PACKAGES`, sorted by name
    (their common base, which has no settings of its own, aside)."""
    found: dict[str, type[BaseSettings]] = {}
    for package in SETTINGS_PACKAGES:
        for module in _modules(package):
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if (
                    issubclass(obj, BaseSettings)
                    and obj not in (BaseSettings, TributarySettings)
                    and obj.__module__ == module.__name__
                ):
                    found[qualified_name(obj)] = obj
    return tuple(found[key] for key in sorted(found))


def _load(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def stack_config() -> type[BaseSettings]:
    cls = _load(STACK_CONFIG)
    if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
        raise TypeError(f"{STACK_CONFIG} is not a pydantic-settings class")
    return cls


def stack_wiring() -> list[str]:
    """Service variables the local stack sets itself for every process it starts.

    Asked of the stack's own code with the bundled LLM, which is when it sets the most.
    """
    llm = importlib.import_module("tributary_devstack.llm")
    services = importlib.import_module("tributary_devstack.services")
    # Defaults only: the page must not depend on the environment it is generated in.
    config: Any = stack_config().model_construct()
    endpoint = llm.LlmEndpoint(config.scripted_llm_url, bundled=True)
    env = services.service_env(config, port=0, instance="", llm=llm.llm_env(endpoint), environ={})
    return [name for name in env if name.startswith("TRIBUTARY_")]

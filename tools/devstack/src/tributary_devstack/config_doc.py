"""docs/configuration.md: every environment variable the services and the local stack read.

The page is generated from the pydantic-settings classes themselves: names
(prefix, aliases), types, defaults and constraints come from the fields, and
descriptions from ``Field(description=...)``, a ``#:`` comment above the field,
or, for fields that have neither yet, :data:`DESCRIPTIONS` below. The unit
suite compares the committed page with :func:`render_configuration_doc`, so
the page cannot drift from the code.

:data:`READERS` says which services load each settings class. Every settings
class of the services' packages must be listed there: a new class without an
entry stops the generator (and fails the tests) until someone says who reads it.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import json
import pkgutil
import re
import sys
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, AliasPath, BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from tributary_devstack.config import StackConfig
from tributary_devstack.llm import LlmEndpoint, llm_env
from tributary_devstack.services import service_env

REGENERATE = "uv run python -m tributary_devstack config-doc write"
DOC_PATH = "docs/configuration.md"

#: Packages whose settings classes make up the services' configuration.
SETTINGS_PACKAGES = (
    "tributary_shared",
    "tributary_gateway",
    "tributary_planner",
    "tributary_agent_runner",
    "tributary_synthesizer",
)

ALL_SERVICES = ("gateway", "planner", "agent-runner", "synthesizer")
WORKERS = ("planner", "agent-runner", "synthesizer")

#: Settings class -> the services that load it at start (``load_settings(cls)`` or
#: ``cls()``). A bad value of any of its variables stops each of these services.
READERS: dict[str, tuple[str, ...]] = {
    "tributary_shared.runtime.settings.KafkaSettings": ALL_SERVICES,
    "tributary_shared.runtime.settings.RedisSettings": ALL_SERVICES,
    "tributary_shared.runtime.settings.HttpSettings": ALL_SERVICES,
    "tributary_shared.runtime.settings.ConsumerSettings": WORKERS,
    "tributary_shared.runtime.settings.LLMSettings": WORKERS,
    "tributary_shared.runtime.settings.BudgetSettings": WORKERS,
    "tributary_shared.runtime.settings.WorkflowDefaults": ("gateway", "planner"),
    "tributary_gateway.settings.GatewaySettings": ("gateway",),
    "tributary_planner.settings.PlannerSettings": ("planner",),
    "tributary_agent_runner.settings.AgentSettings": ("agent-runner",),
    "tributary_agent_runner.tools.mcp_config.McpSettings": ("agent-runner",),
    "tributary_agent_runner.tools.web_search.WebSearchSettings": ("agent-runner",),
}

#: Descriptions of fields that carry none in the code (``Class.field``). A field that
#: gains a ``description`` or a ``#:`` comment must be removed from here (tested).
DESCRIPTIONS: dict[str, str] = {
    # tributary_shared.runtime.settings
    "KafkaSettings.kafka_bootstrap_servers": "Kafka brokers, comma-separated `host:port`.",
    "KafkaSettings.kafka_client_id": "Prefix of the Kafka client ids; the instance name is "
    "appended.",
    "RedisSettings.redis_url": "Redis holding workflow state and budgets.",
    "HttpSettings.http_host": "Address the HTTP server (API, health, metrics) listens on; "
    "`0.0.0.0` in containers.",
    "HttpSettings.http_port": "Port of the HTTP server.",
    "HttpSettings.service_instance": "Name of this replica in logs and Kafka client ids; "
    "empty means the service's name.",
    "HttpSettings.log_level": "Lowest level of the log lines written.",
    "ConsumerSettings.max_in_flight": "Messages one worker process handles at once.",
    "ConsumerSettings.shutdown_grace_s": "On SIGTERM, how long messages being handled get to "
    "finish before the process stops.",
    "LLMSettings.base_url": "OpenAI-compatible endpoint (ending in `/v1`); unset means the "
    "OpenAI API.",
    "LLMSettings.api_key": "Key for the LLM endpoint; the workers do not start without it.",
    "LLMSettings.planner_model": "Model that plans workflows.",
    "LLMSettings.agent_model": "Model that runs agent steps (unless routed to the simple or "
    "complex model).",
    "LLMSettings.synthesizer_model": "Model that writes the final answer.",
    "LLMSettings.timeout_s": "Timeout of one LLM request.",
    "LLMSettings.max_attempts": "Tries of one LLM call when the endpoint fails transiently.",
    "LLMSettings.max_backoff_s": "Longest pause between two tries of an LLM call.",
    "BudgetSettings.on_budget_exhausted": "When a workflow's budget runs out: `partial` answers "
    "from the steps that finished, `fail` fails the workflow. A workflow's options override "
    "it.",
    "ModelPrice.prompt_per_1k_usd": "US dollars per 1,000 prompt tokens.",
    "ModelPrice.completion_per_1k_usd": "US dollars per 1,000 completion tokens.",
    # tributary_agent_runner
    "McpStdioServer.transport": "A subprocess speaking MCP on stdin/stdout.",
    "McpStdioServer.command": "Program that starts the server.",
    "McpStdioServer.cwd": "Working directory of the server process.",
    "McpHttpServer.transport": "MCP's streamable HTTP transport.",
    "McpHttpServer.url": "Absolute `http(s)` URL of the MCP endpoint.",
    "McpHttpServer.headers": "Sent with every request, e.g. `Authorization`.",
    "McpSettings.servers": "MCP servers whose tools agents may call (entries below). Empty: "
    "no MCP tools.",
    "McpSettings.retry_max_interval_s": "Longest pause between tries of a server that could "
    "not be reached.",
    "WebSearchSettings.brave_api_key": "Brave Search API key; sent in a request header only.",
    "WebSearchSettings.brave_url": "Brave Search API endpoint.",
    "WebSearchSettings.timeout_s": "Timeout of one search request.",
    # tributary_devstack.config
    "StackConfig.repo_root": "Workspace root; relative run and cache directories are resolved "
    "against it. Found from the installed package.",
    "StackConfig.run_dir": "Logs, pid files and the data of Kafka and Redis.",
    "StackConfig.cache_dir": "Downloaded Kafka jars, shared by every run directory.",
    "StackConfig.kafka_version": "Kafka version fetched with Maven.",
    "StackConfig.kafka_port": "Port of the Kafka broker.",
    "StackConfig.kafka_controller_port": "Port of the broker's KRaft controller listener.",
    "StackConfig.kafka_auto_create_topics": "Let the broker create unknown topics. Off, so a "
    "mistyped topic name fails instead of getting one partition.",
    "StackConfig.redis_port": "Port of the Redis server.",
    "StackConfig.gateway_port": "HTTP port of the gateway's first replica.",
    "StackConfig.planner_port": "HTTP port of the planner's first replica.",
    "StackConfig.agent_runner_port": "HTTP port of the agent-runner's first replica.",
    "StackConfig.synthesizer_port": "HTTP port of the synthesizer's first replica.",
    "StackConfig.scripted_llm_port": "Port of the bundled scripted LLM server.",
    "StackConfig.replica_port_stride": "Replica `i` of a service listens on its port "
    "+ `i * stride`.",
    "StackConfig.replicas": "Processes per service started by `make up` (`REPLICAS=N` or "
    "`--replicas` win over it).",
    "StackConfig.llm_base_url": "OpenAI-compatible endpoint for the services; unset starts "
    "the bundled scripted LLM.",
    "StackConfig.java": "Java executable that runs Kafka.",
    "StackConfig.mvn": "Maven executable that fetches the Kafka jars.",
    "StackConfig.redis_server": "`redis-server` executable.",
    "StackConfig.startup_timeout_s": "How long each component may take to become ready.",
    "StackConfig.stop_grace_s": "How long a process may take to stop after SIGTERM before it "
    "is killed.",
}

_EMPTY_FACTORIES: dict[object, str] = {
    list: "[]",
    tuple: "[]",
    set: "[]",
    frozenset: "[]",
    dict: "{}",
}
_SECRET_TYPES = (SecretStr, SecretBytes)
_SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|PASSWORD|SECRET)$")
_HEADER = ("Variable", "Default", "Type / allowed", "Description")
_NESTED_HEADER = ("Key", "Default", "Type / allowed", "Description")


class UnlistedSettingsError(ValueError):
    """A settings class was found that :data:`READERS` does not mention."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the page: a field of a settings class (or of a JSON entry model)."""

    names: tuple[str, ...]
    """Environment variables (or JSON keys); the first is the main one."""
    default: str
    kind: str
    description: str
    secret: bool
    models: tuple[type[BaseModel], ...]
    """Models the JSON value is made of, described below the table."""


# --- finding the classes ---------------------------------------------------------------


def _modules(package: str) -> Iterator[types.ModuleType]:
    root = importlib.import_module(package)
    yield root
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        yield importlib.import_module(info.name)


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@cache
def settings_classes() -> tuple[type[BaseSettings], ...]:
    """Every pydantic-settings class defined in :data:`SETTINGS_PACKAGES`, sorted by name."""
    found: dict[str, type[BaseSettings]] = {}
    for package in SETTINGS_PACKAGES:
        for module in _modules(package):
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if (
                    issubclass(obj, BaseSettings)
                    and obj is not BaseSettings
                    and obj.__module__ == module.__name__
                ):
                    found[qualified_name(obj)] = obj
    return tuple(found[key] for key in sorted(found))


# --- one field -----------------------------------------------------------------------------


def env_names(cls: type[BaseSettings], name: str, field: FieldInfo) -> tuple[str, ...]:
    """The variables a field is read from, in the order pydantic-settings tries them."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    alias = field.validation_alias or field.alias
    choices: list[str | AliasPath] = []
    if isinstance(alias, AliasChoices):
        choices = [c for c in alias.choices if isinstance(c, str | AliasPath)]
    elif isinstance(alias, str | AliasPath):
        choices = [alias]
    names = [_alias_name(choice) for choice in choices] or [prefix + name]
    if not cls.model_config.get("case_sensitive", False):
        names = [n.upper() for n in names]
    return tuple(dict.fromkeys(names))


def _alias_name(alias: str | AliasPath) -> str:
    return alias if isinstance(alias, str) else str(alias.path[0])


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _options(tp: Any) -> list[Any]:
    """The members of a union (``None`` left out), or ``[tp]``."""
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return [arg for arg in (_unwrap(a) for a in get_args(tp)) if arg is not type(None)]
    return [tp]


def _walk_types(tp: Any) -> Iterator[Any]:
    tp = _unwrap(tp)
    yield tp
    for arg in get_args(tp):
        if not isinstance(arg, str | int | float | bool | FieldInfo) and arg is not None:
            yield from _walk_types(arg)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel) and not issubclass(tp, BaseSettings)


def _models_in(tp: Any) -> tuple[type[BaseModel], ...]:
    found = [t for t in _walk_types(tp) if _is_model(t)]
    return tuple(dict.fromkeys(found))


def is_secret(field: FieldInfo, names: Sequence[str]) -> bool:
    """A secret type anywhere in the annotation, or a name that says key/token/password."""
    if any(t in _SECRET_TYPES for t in _walk_types(field.annotation)):
        return True
    return any(_SECRET_NAME.search(name.upper()) for name in names)


def type_text(tp: Any) -> str:
    """A readable type: ``int``, ``one of `a`, `b` ``, ``JSON object: str → ...``."""
    options = _options(tp)
    if len(options) > 1:
        return " or ".join(type_text(option) for option in options)
    tp = options[0]
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Literal:
        values = ", ".join(_code(_value_text(v)) for v in args)
        return f"one of {values}" if len(args) > 1 else values
    if origin in (list, tuple, set, frozenset) or origin is Sequence:
        return "JSON array" + (f" of {type_text(args[0])}" if args else "")
    if origin is dict or origin is Mapping:
        return "JSON object" + (f": {type_text(args[0])} → {type_text(args[1])}" if args else "")
    if tp in _SECRET_TYPES:
        return "str (secret)"
    if isinstance(tp, type):
        if _is_model(tp):
            return f"`{tp.__name__}` object"
        if issubclass(tp, bool):
            return "bool"
        if issubclass(tp, Enum):
            return "one of " + ", ".join(_code(_value_text(m.value)) for m in tp)
        if issubclass(tp, PurePath):
            return "path"
        if tp in (int, float, str):
            return tp.__name__
        if tp is dict:
            return "JSON object"
        if tp in (list, tuple):
            return "JSON array"
    return str(tp).replace("typing.", "")


def constraints_text(field: FieldInfo) -> list[str]:
    """``>= 1``, ``<= 65535``, ``non-empty``, ...: what the field's validation enforces."""
    parts: list[str] = []
    for item in field.metadata:
        for attr, template in (
            ("gt", "> {}"),
            ("ge", ">= {}"),
            ("lt", "< {}"),
            ("le", "<= {}"),
            ("multiple_of", "multiple of {}"),
        ):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(template.format(_value_text(value)))
        min_length = getattr(item, "min_length", None)
        if min_length is not None:
            parts.append("non-empty" if min_length == 1 else f"length >= {min_length}")
        max_length = getattr(item, "max_length", None)
        if max_length is not None:
            parts.append(f"length <= {max_length}")
        pattern = getattr(item, "pattern", None)
        if pattern is not None:
            parts.append(f"matches {_code(str(pattern))}")
    return parts


def default_text(field: FieldInfo, *, secret: bool) -> str:
    """The default as the page shows it; a secret's value never appears."""
    if field.is_required():
        return "required"
    factory = field.default_factory
    if factory is not None:
        empty = _EMPTY_FACTORIES.get(factory)
        return _code(empty) if empty is not None else "computed at start"
    value = field.default
    if value is None:
        return "unset"
    if secret:
        return "hidden"
    return _code(_value_text(value))


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return _value_text(value.value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True, default=str)


@cache
def _doc_comments(cls: type) -> Mapping[str, str]:
    """``#:`` comments written directly above a class's fields, its bases' included."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ in ("builtins", "pydantic.main", "pydantic_settings.main"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        tree = ast.parse(source)
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                above: list[str] = []
                index = node.lineno - 2  # lines are 1-based; start at the line above
                while index >= 0 and lines[index].strip().startswith("#:"):
                    above.insert(0, lines[index].strip()[2:].strip())
                    index -= 1
                if above:
                    comments[node.target.id] = " ".join(above)
    return comments


def own_description(cls: type[BaseModel], name: str) -> str:
    """What the code says about a field: its ``description``, else its ``#:`` comment."""
    field = cls.model_fields[name]
    return field.description or _doc_comments(cls).get(name, "")


def description_of(cls: type[BaseModel], name: str) -> str:
    return _clean(own_description(cls, name) or DESCRIPTIONS.get(f"{cls.__name__}.{name}", ""))


def _clean(text: str) -> str:
    text = re.sub(r"``([^`]+)``", r"`\1`", text)  # reStructuredText literals
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)  # :class:`X` and friends
    return " ".join(text.split())


def _setting(cls: type[BaseModel], name: str, field: FieldInfo, names: tuple[str, ...]) -> Setting:
    secret = is_secret(field, names)
    models = _models_in(field.annotation)
    kind = ", ".join([type_text(field.annotation), *constraints_text(field)])
    if models:
        kind += " (keys below)"
    return Setting(
        names=names,
        default=default_text(field, secret=secret),
        kind=kind,
        description=description_of(cls, name),
        secret=secret,
        models=models,
    )


def settings_of(cls: type[BaseSettings]) -> list[Setting]:
    """One row per field of a settings class, in the order of the fields."""
    return [
        _setting(cls, name, field, env_names(cls, name, field))
        for name, field in cls.model_fields.items()
    ]


def keys_of(model: type[BaseModel]) -> list[Setting]:
    """One row per key of a JSON entry (a model inside a setting's value)."""
    return [
        _setting(model, name, field, (field.alias or name,))
        for name, field in model.model_fields.items()
    ]


# --- the page --------------------------------------------------------------------------


def readers_of(cls: type[BaseSettings]) -> tuple[str, ...]:
    try:
        return READERS[qualified_name(cls)]
    except KeyError:
        raise UnlistedSettingsError(
            f"{qualified_name(cls)} is not in READERS in {__name__}: add it with the services "
            f"that load it, then run `{REGENERATE}`"
        ) from None


def service_groups() -> list[tuple[tuple[str, ...], list[type[BaseSettings]]]]:
    """Settings classes grouped by the services that read them, in :data:`READERS` order."""
    found = {qualified_name(cls): cls for cls in settings_classes()}
    for cls in found.values():
        readers_of(cls)
    groups: dict[tuple[str, ...], list[type[BaseSettings]]] = {}
    for name, services in READERS.items():
        if name in found:
            groups.setdefault(services, []).append(found[name])
    return list(groups.items())


def _group_title(services: tuple[str, ...]) -> str:
    if services == ALL_SERVICES:
        return "All services"
    if services == WORKERS:
        return "Workers"
    names = list(services)
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return text[:1].upper() + text[1:]


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "—"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _variable_cell(names: Sequence[str]) -> str:
    main, *others = names
    cell = _code(main)
    if others:
        cell += " (also read: " + ", ".join(_code(n) for n in others) + ")"
    return cell


def _settings_table(settings: Sequence[Setting]) -> str:
    rows = [[_variable_cell(s.names), s.default, s.kind, s.description] for s in settings]
    return _table(_HEADER, rows)


def _class_doc(cls: type) -> str:
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str):
        return ""
    return _clean(inspect.cleandoc(doc).split("\n\n")[0])


def _nested_sections(settings: Sequence[Setting]) -> list[str]:
    sections: list[str] = []
    for setting in settings:
        if not setting.models:
            continue
        parts = [f"### Entries of {_code(setting.names[0])}\n"]
        seen: list[type[BaseModel]] = []
        queue = list(setting.models)
        while queue:
            model = queue.pop(0)
            if model in seen:
                continue
            seen.append(model)
            keys = keys_of(model)
            doc = _class_doc(model)
            parts.append(f"`{model.__name__}`" + (f": {doc}" if doc else "") + "\n")
            parts.append(
                _table(
                    _NESTED_HEADER,
                    [[_code(k.names[0]), k.default, k.kind, k.description] for k in keys],
                )
            )
            queue += [m for k in keys for m in k.models]
        sections.append("\n".join(parts))
    return sections


def _group_section(services: tuple[str, ...], classes: Sequence[type[BaseSettings]]) -> str:
    settings = [s for cls in classes for s in settings_of(cls)]
    readers = ", ".join(_code(s) for s in services)
    sources = ", ".join(_code(qualified_name(cls)) for cls in classes)
    parts = [
        f"## {_group_title(services)}\n",
        f"Read by {readers}. Defined in {sources}.\n",
        _settings_table(settings),
        *_nested_sections(settings),
    ]
    return "\n".join(parts)


def _stack_wiring() -> list[str]:
    """Service variables the local stack sets itself for every process it starts."""
    config = StackConfig.model_construct()
    llm = llm_env(LlmEndpoint(config.scripted_llm_url, bundled=True))
    env = service_env(config, port=0, instance="", llm=llm, environ={})
    return [name for name in env if name.startswith("TRIBUTARY_")]


def _stack_section() -> str:
    wired = ", ".join(_code(name) for name in _stack_wiring())
    intro = (
        "## Local stack (make up / make test)\n\n"
        f"Read by `python -m tributary_devstack` (`make up`, `make down`, `make status`, "
        f"`make demo`, ...) and by the integration tests of `make test`, which choose their "
        f"own run directory, Kafka and Redis ports. Defined in "
        f"{_code(qualified_name(StackConfig))}.\n\n"
        "The services it starts inherit the caller's environment, so the settings above "
        f"apply to them too, except {wired}: the stack sets those from the values below "
        "(the API key only for the bundled scripted LLM).\n"
    )
    return intro + "\n" + _settings_table(settings_of(StackConfig))


def _intro() -> str:
    return (
        "# Configuration\n\n"
        f"<!-- Generated by `{REGENERATE}`; do not edit by hand. -->\n\n"
        "Every setting is an environment variable, read once when a process starts. A value "
        "that does not parse or is out of range stops the service at start with a message "
        "naming the variable (for example `invalid configuration: TRIBUTARY_HTTP_PORT: Input "
        "should be a valid integer`). Secrets (API keys, MCP server URLs, headers and "
        "environments) are never logged, and their defaults are not shown here.\n\n"
        "Where a setting lists variables it also reads, the first one that is set wins. "
        "Values of JSON types are written as JSON. Each section names the services that read "
        "its variables; shared settings are read by every service listed.\n"
    )


def render_configuration_doc() -> str:
    """The whole page. Depends only on the code, never on the environment."""
    parts = [_intro()]
    parts += [_group_section(services, classes) for services, classes in service_groups()]
    parts.append(_stack_section())
    return "\n".join(parts)


# --- write / check ---------------------------------------------------------------------


def committed(root: Path) -> str | None:
    path = root / DOC_PATH
    return path.read_text(encoding="utf-8") if path.is_file() else None


def diff(root: Path, *, context: int = 2) -> str:
    """A unified diff from the committed page to the generated one ('' when equal)."""
    return "".join(
        difflib.unified_diff(
            (committed(root) or "").splitlines(keepends=True),
            render_configuration_doc().splitlines(keepends=True),
            fromfile=f"{DOC_PATH} (committed)",
            tofile=f"{DOC_PATH} (generated)",
            n=context,
        )
    )


def write(root: Path) -> bool:
    """Write the page if it changed; returns whether it did."""
    text = render_configuration_doc()
    if committed(root) == text:
        return False
    path = root / DOC_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


_MAX_DIFF_LINES = 60


def run(action: str, root: Path, say: Callable[[str], None]) -> int:
    """``config-doc write|check``: 0 when the page is (now) up to date, 1 when stale."""
    if action == "write":
        say(f"wrote {DOC_PATH}" if write(root) else f"{DOC_PATH} is up to date")
        return 0
    current = committed(root)
    if current == render_configuration_doc():
        say(f"{DOC_PATH} is up to date")
        return 0
    if current is None:
        print(f"{DOC_PATH} is missing.", file=sys.stderr)
    else:
        lines = diff(root).splitlines()
        print(f"{DOC_PATH} does not match the code:", file=sys.stderr)
        print("\n".join(lines[:_MAX_DIFF_LINES]), file=sys.stderr)
        if len(lines) > _MAX_DIFF_LINES:
            print(f"... ({len(lines) - _MAX_DIFF_LINES} more diff lines)", file=sys.stderr)
    print(f"Regenerate it with: {REGENERATE}", file=sys.stderr)
    return 1

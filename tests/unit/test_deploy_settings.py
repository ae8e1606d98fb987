"""Deployment files vs. the code: helpers shared by the test_deploy_* modules, and the
checks that every ``TRIBUTARY_*`` variable the deployment files set is a real setting
with a valid value.

The setting names are collected by walking the pydantic-settings classes of the
shared library and the four services, so a renamed or removed setting makes these
tests fail until compose.yaml and deploy/k8s follow.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, cast
from unittest import mock

import pytest
import yaml
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings
from starlette.routing import Mount

from tributary_devtools.config_doc.sources import settings_classes
from tributary_shared.core.topology import deployed_roles
from tributary_shared.runtime.worker import WorkerLogic, WorkerResources, WorkerSpec

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "deploy" / "k8s"
COMPOSE_FILE = REPO / "compose.yaml"
TOPICS_SCRIPT = K8S_DIR / "topics" / "ensure-topics.sh"

Doc = dict[str, Any]


@dataclass(frozen=True)
class ServiceInfo:
    name: str  # compose service and Kubernetes Deployment name
    module: str  # run as ``python -m <module>``
    dist: str  # distribution name in the uv workspace
    directory: Path  # workspace member directory (holds the Dockerfile)


SERVICES: dict[str, ServiceInfo] = {
    info.name: info
    for info in (
        ServiceInfo("gateway", "tributary_gateway", "tributary-gateway", REPO / "services/gateway"),
        ServiceInfo("planner", "tributary_planner", "tributary-planner", REPO / "services/planner"),
        ServiceInfo(
            "agent-runner",
            "tributary_agent_runner",
            "tributary-agent-runner",
            REPO / "services/agent-runner",
        ),
        ServiceInfo(
            "synthesizer",
            "tributary_synthesizer",
            "tributary-synthesizer",
            REPO / "services/synthesizer",
        ),
        ServiceInfo(
            "scripted-llm",
            "tributary_scripted_llm",
            "tributary-scripted-llm",
            REPO / "tools/scripted-llm",
        ),
    )
}
#: The services that run a Kafka consumer group, as the topology declares them.
WORKERS = tuple(role.service for role in deployed_roles() if role.group_id is not None)
TRIBUTARY_NAME = re.compile(r"\bTRIBUTARY_[A-Z0-9_]*[A-Z0-9]\b")


# --- loading ------------------------------------------------------------------------


def load_yaml_docs(path: Path) -> list[Doc]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in docs), f"{path}: every document is a mapping"
    return cast(list[Doc], docs)


def k8s_manifest_files() -> list[Path]:
    """Every Kubernetes manifest under deploy/k8s (kustomization files excluded)."""
    return sorted(
        path
        for path in K8S_DIR.rglob("*.yaml")
        if path.name not in ("kustomization.yaml", "kustomization.yml")
    )


@cache
def k8s_docs() -> list[tuple[Path, Doc]]:
    return [(path, doc) for path in k8s_manifest_files() for doc in load_yaml_docs(path)]


def compose() -> Doc:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return cast(Doc, data)


def deployment_files() -> list[Path]:
    """Every file of compose.yaml, deploy/ and the Dockerfiles, as text to scan."""
    files = [COMPOSE_FILE, *sorted((REPO / "deploy").rglob("*"))]
    files += [info.directory / "Dockerfile" for info in SERVICES.values()]
    return [path for path in files if path.is_file()]


# --- the code's view -----------------------------------------------------------------


def env_names_of(cls: type[BaseSettings]) -> set[str]:
    """The environment variables one settings class reads (names upper-cased)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(prefix + field_name)
    return {name.upper() for name in names}


@cache
def setting_env_names() -> frozenset[str]:
    names: set[str] = set()
    for cls in settings_classes():
        names |= env_names_of(cls)
    return frozenset(names)


def worker_spec(service: str) -> WorkerSpec:
    spec = importlib.import_module(f"{SERVICES[service].module}.__main__").SPEC
    assert isinstance(spec, WorkerSpec)
    return spec


def _no_logic(resources: WorkerResources) -> WorkerLogic:
    # Every method of the logic protocol becomes an awaitable no-op.
    return cast(WorkerLogic, mock.AsyncMock())


def build_worker_app(service: str) -> Any:
    """The worker's real ASGI app (shared ``build_app``), without its LLM-backed logic."""
    from tributary_shared.runtime.worker import build_app

    spec = replace(worker_spec(service), build=_no_logic)
    with mock.patch("tributary_shared.runtime.worker.configure_logging"):
        app, _http = build_app(spec)
    return app


def build_gateway_app() -> Any:
    from tributary_gateway.app import create_app

    with mock.patch("tributary_gateway.app.configure_logging"):
        return create_app()


@cache
def served_paths(service: str) -> frozenset[str]:
    """HTTP paths a service really serves (probes and health checks must use these)."""
    if service == "gateway":
        app = build_gateway_app()
        paths = set(app.openapi()["paths"])
        paths |= {route.path for route in app.routes if isinstance(route, Mount)}
        if app.docs_url:
            paths.add(app.docs_url)
        return frozenset(paths)
    if service in WORKERS:
        return frozenset(path for path, _ in build_worker_app(service).routes)
    if service == "scripted-llm":
        from tributary_scripted_llm.app import create_app

        return frozenset(create_app().openapi()["paths"])
    raise KeyError(service)


# --- deployment files' view ------------------------------------------------------------


def configmap_data() -> dict[str, str]:
    maps = [
        doc
        for _, doc in k8s_docs()
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "tributary-config"
    ]
    assert len(maps) == 1, "exactly one ConfigMap tributary-config"
    data = maps[0]["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values are strings"
    return cast(dict[str, str], data)


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def compose_interpolations() -> list[tuple[str, str | None]]:
    """(variable, default) of every ``${...}`` in compose.yaml (``$$`` escapes skipped)."""
    text = COMPOSE_FILE.read_text().replace("$$", "")
    return [(m["name"], m["default"]) for m in _INTERPOLATION.finditer(text)]


def resolve_compose_value(value: object) -> str | None:
    """A compose environment value with ``${VAR:-default}`` resolved to its default."""
    if value is None:
        return None  # passed through from the caller's environment when set
    text = str(value).replace("$$", "\0")
    text = _INTERPOLATION.sub(lambda m: m["default"] or "", text)
    return text.replace("\0", "$")


def compose_environment(service: Doc) -> dict[str, str | None]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {str(k): resolve_compose_value(v) for k, v in env.items()}


def settings_errors(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Instantiate every settings class with exactly ``env``; return validation errors."""
    import os

    for name in list(os.environ):
        if name.startswith(("TRIBUTARY_", "OPENAI_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    errors = []
    for cls in settings_classes():
        try:
            cls()
        except ValidationError as exc:
            errors.append(f"{cls.__name__}: {exc}")
    return errors


# --- tests ----------------------------------------------------------------------------


def test_settings_walk_finds_the_known_settings() -> None:
    names = setting_env_names()
    # A walk that found nothing would make every check below vacuous.
    for expected in (
        "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS",
        "TRIBUTARY_REDIS_URL",
        "TRIBUTARY_HTTP_PORT",
        "TRIBUTARY_SHUTDOWN_GRACE_S",
        "TRIBUTARY_LLM_API_KEY",
        "TRIBUTARY_LLM_BASE_URL",
        "TRIBUTARY_PLANNER_MODEL",
        "TRIBUTARY_GATEWAY_MAX_TASK_CHARS",
        "TRIBUTARY_PLANNER_MAX_STEPS",
        "TRIBUTARY_WEB_SEARCH_PROVIDER",
    ):
        assert expected in names
    # The local stack's own knobs are not service settings.
    assert "TRIBUTARY_KAFKA_PORT" not in names


def test_every_tributary_variable_in_deployment_files_is_a_real_setting() -> None:
    # X_FILE gives setting X from a file (tributary_shared.runtime.env_files).
    known = setting_env_names() | {name + "_FILE" for name in setting_env_names()}
    scanned = deployment_files()
    assert COMPOSE_FILE in scanned
    assert TOPICS_SCRIPT in scanned
    used: dict[str, set[str]] = {}
    for path in scanned:
        for name in TRIBUTARY_NAME.findall(path.read_text()):
            used.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert "TRIBUTARY_LLM_API_KEY" in used
    unknown = {name: sorted(files) for name, files in used.items() if name not in known}
    assert not unknown, f"not a setting of any service: {unknown}"


def test_configmap_holds_only_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether they make a valid configuration with the Secrets' files is checked per pod,
    in test_deploy_k8s."""
    data = configmap_data()
    assert set(data) <= setting_env_names()
    assert "TRIBUTARY_LLM_API_KEY" not in data, "the API key belongs in a Secret"


def test_compose_environments_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    checked = 0
    for name in ("gateway", *WORKERS):
        env = {k: v for k, v in compose_environment(services[name]).items() if v is not None}
        assert settings_errors(env, monkeypatch) == [], name
        checked += 1
    assert checked == 4


def test_compose_interpolations_of_settings_have_defaults() -> None:
    found = compose_interpolations()
    assert found, "compose.yaml interpolates the LLM endpoint and key"
    for name, default in found:
        if name.startswith("TRIBUTARY_"):
            # Unset variables must not turn into empty strings (an empty model name or
            # URL is invalid); pass-through without a default is written `NAME:`.
            assert default, f"${{{name}}} needs a default"


def test_settings_errors_helper_reports_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    errors = settings_errors({"TRIBUTARY_HTTP_PORT": "not-a-port"}, monkeypatch)
    assert any("HttpSettings" in error for error in errors)

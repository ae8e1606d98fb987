"""Layers you can see: who may import whom, no import cycles, and images that hold
exactly what their service imports.

The import graph comes from grimp (static: every ``import`` statement, those inside
functions included). Importing ``a.b.c`` also runs ``a/__init__`` and
``a/b/__init__``, so an edge to a module is also an edge to its enclosing
packages; that is how a package ``__init__`` that re-exports can close a cycle.

- ``tributary_shared.core`` imports nothing of the runtime, the dev tooling or the
  services, and no third-party package but pydantic.
- The rest of ``tributary_shared`` imports neither the dev tooling nor a service.
- A service imports no other service and no dev tooling (it is not in the images).
- No cycles among the modules of ``tributary_shared``, ``tributary_devtools`` and
  the services (``if TYPE_CHECKING`` imports count: they are a design dependency).
- Each image (``uv sync --package <service> --no-dev``, as the Dockerfiles run it)
  holds every third-party distribution its service imports, through
  ``tributary_shared`` included; the gateway's holds no LLM SDK.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import packages_distributions

import grimp
import pytest

from tests.unit.test_deploy_settings import REPO, SERVICES

SHARED = "tributary_shared"
CORE = "tributary_shared.core"
RUNTIME = "tributary_shared.runtime"
DEVTOOLS = "tributary_devtools"
#: The services of the event flow; the scripted LLM (a test tool) has an image but no layer.
SERVICE_PACKAGES = tuple(info.module for name, info in SERVICES.items() if name != "scripted-llm")
ANALYSED = (SHARED, DEVTOOLS, *SERVICE_PACKAGES)
#: The one third-party package the core may use (its models are pydantic models).
CORE_THIRD_PARTY = frozenset({"pydantic"})
#: Distributions that must never reach the gateway's image: it calls no model.
LLM_ONLY = ("openai", "httpx2")

Graph = Mapping[str, frozenset[str]]


# --- the graph -----------------------------------------------------------------------------


def top(module: str) -> str:
    return module.split(".")[0]


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def is_internal(module: str) -> bool:
    return top(module) in ANALYSED or any(within(module, info.module) for info in SERVICES.values())


def is_third_party(module: str) -> bool:
    return not is_internal(module) and top(module) not in sys.stdlib_module_names


def enclosing_packages(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


@cache
def grimp_graph(*packages: str, type_checking: bool) -> grimp.ImportGraph:
    return grimp.build_graph(
        *packages,
        include_external_packages=True,
        exclude_type_checking_imports=not type_checking,
        cache_dir=None,
    )


@cache
def import_graph(*packages: str, type_checking: bool) -> Graph:
    """module -> what importing it runs: the modules it imports and their packages."""
    graph = grimp_graph(*packages, type_checking=type_checking)
    edges: dict[str, frozenset[str]] = {}
    for module in graph.modules:
        if not is_internal(module):
            continue
        targets: set[str] = set()
        for imported in graph.find_modules_directly_imported_by(module):
            targets.add(imported)
            # Packages the importer is inside of are already being initialised.
            targets |= enclosing_packages(imported) - enclosing_packages(module) - {module}
        edges[module] = frozenset(targets)
    return edges


def direct_imports(importer_package: str, *, type_checking: bool = True) -> list[tuple[str, str]]:
    """(importer, imported) for every direct import of a module inside ``importer_package``."""
    graph = grimp_graph(*ANALYSED, type_checking=type_checking)
    return sorted(
        (module, imported)
        for module in graph.modules
        if within(module, importer_package)
        for imported in graph.find_modules_directly_imported_by(module)
    )


def describe(importer: str, imported: str) -> str:
    graph = grimp_graph(*ANALYSED, type_checking=True)
    details = graph.get_import_details(importer=importer, imported=imported)
    where = "; ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
    return f"{importer} -> {imported} ({where})"


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), as cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(root: str) -> None:
        # Iterative, so a deep import chain cannot hit the recursion limit.
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in graph:
                    continue
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(_one_cycle(graph, set(component)))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _one_cycle(graph: Graph, component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & component):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if successor not in previous:
                    previous[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def reachable(graph: Graph, roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(graph.get(module, ()))
    return seen


# --- layer contracts -----------------------------------------------------------------------


def test_the_graph_sees_every_layer() -> None:
    graph = import_graph(*ANALYSED, type_checking=True)
    for package in (CORE, RUNTIME, DEVTOOLS, *SERVICE_PACKAGES):
        assert sum(within(module, package) for module in graph) >= 2, package
    # A known edge, so an empty graph cannot pass the checks below.
    assert "tributary_shared.core.events" in graph["tributary_shared.runtime.kafka.publisher"]


def test_the_core_imports_no_runtime_tooling_service_or_io_package() -> None:
    violations = [
        describe(importer, imported)
        for importer, imported in direct_imports(CORE)
        if (is_internal(imported) and not within(imported, CORE) and imported != SHARED)
        or (is_third_party(imported) and top(imported) not in CORE_THIRD_PARTY)
    ]
    assert not violations, "the core must stay pure:\n" + "\n".join(violations)


def test_the_rest_of_shared_imports_no_tooling_and_no_service() -> None:
    forbidden = (DEVTOOLS, *SERVICE_PACKAGES)
    violations = [
        describe(importer, imported)
        for importer, imported in direct_imports(SHARED)
        if any(within(imported, package) for package in forbidden)
    ]
    assert not violations, "tributary_shared depends on nothing above it:\n" + "\n".join(violations)


@pytest.mark.parametrize("service", SERVICE_PACKAGES)
def test_a_service_imports_no_other_service_and_no_tooling(service: str) -> None:
    forbidden = [DEVTOOLS, *(other for other in SERVICE_PACKAGES if other != service)]
    violations = [
        describe(importer, imported)
        for importer, imported in direct_imports(service)
        if any(within(imported, package) for package in forbidden)
    ]
    assert not violations, f"{service} reaches outside its image:\n" + "\n".join(violations)


def test_no_import_cycles() -> None:
    found = cycles(import_graph(*ANALYSED, type_checking=True))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_cycle_detection_follows_package_inits() -> None:
    # a.x imports b.y; b/__init__ imports c, which imports a.x: a cycle through b's init.
    graph = {
        "a.x": frozenset({"b.y", "b"}),
        "b": frozenset({"c"}),
        "b.y": frozenset(),
        "c": frozenset({"a.x", "a"}),
        "a": frozenset(),
    }
    assert cycles(graph) == [["a.x", "b", "c", "a.x"]]
    assert cycles({**graph, "b": frozenset()}) == []


# --- per-image dependencies ----------------------------------------------------------------


def distribution(name: str) -> str:
    """A distribution name in its normal form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


#: As the Dockerfiles sync: from the lock as it is, without the dev group; names only.
EXPORT_OPTIONS = (
    "--frozen",
    "--no-dev",
    "--no-hashes",
    "--no-header",
    "--no-annotate",
    "--no-emit-workspace",
)


@cache
def image_closure(dist: str) -> frozenset[str]:
    """Third-party distributions ``uv sync --frozen --no-dev --package <dist>`` installs."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to read the lock as the images do"
    exported = subprocess.run(
        [uv, "export", "--package", dist, *EXPORT_OPTIONS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    names = (re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line) for line in exported.splitlines())
    return frozenset(distribution(match.group(0)) for match in names if match)


def imported_distributions(package: str) -> dict[str, set[str]]:
    """Distribution -> the service's or shared modules importing it, at run time."""
    packages = (package, SHARED) if package != SHARED else (SHARED,)
    graph = import_graph(*packages, type_checking=False)
    modules = reachable(graph, [m for m in graph if within(m, package)])
    providers = packages_distributions()
    found: dict[str, set[str]] = {}
    for module in modules:
        for imported in graph.get(module, ()):
            if not is_third_party(imported):
                continue
            shared_by = providers.get(top(imported), [top(imported)])
            if len(shared_by) > 1:
                # A namespace several distributions share (``opentelemetry``): grimp names
                # only its top; the import statements say which of them the module needs.
                shared_by = namespace_distributions(packages, module, imported)
            for dist in shared_by:
                found.setdefault(distribution(dist), set()).add(module)
    return found


def namespace_distributions(packages: tuple[str, ...], importer: str, imported: str) -> list[str]:
    """The distributions whose modules ``importer``'s import statements of the namespace
    package ``imported`` name."""
    details = grimp_graph(*packages, type_checking=False).get_import_details(
        importer=importer, imported=imported
    )
    owners: set[str | None] = set()
    for detail in details:
        line = detail["line_contents"]
        match = re.search(rf"(?:from|import)\s+({re.escape(imported)}(?:\.\w+)*)", line)
        if match is None:
            continue
        owner = module_owner(match.group(1))
        if owner is None:  # ``from opentelemetry import trace``: the names are modules
            names = re.findall(r"\w+", line.partition(" import ")[2])
            owners |= {module_owner(f"{match.group(1)}.{name}") for name in names}
        else:
            owners.add(owner)
    assert None not in owners, f"{importer} imports a module of {imported} no distribution has"
    return sorted(owner for owner in owners if owner is not None)


@cache
def module_owners() -> dict[str, str]:
    """Module -> the installed distribution whose files hold it."""
    owners: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            if file.suffix == ".py":
                parts = file.with_suffix("").parts
                parts = parts[:-1] if parts[-1] == "__init__" else parts
                owners[".".join(parts)] = dist.metadata["Name"]
    return owners


def module_owner(module: str) -> str | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        owner = module_owners().get(".".join(parts[:end]))
        if owner is not None:
            return owner
    return None


IMAGES = sorted(SERVICES)


@pytest.mark.parametrize("service", IMAGES)
def test_each_image_installs_what_its_service_imports(service: str) -> None:
    info = SERVICES[service]
    closure = image_closure(info.dist)
    needed = imported_distributions(info.module)
    assert needed, f"{info.module} imports no third-party package? the graph is empty"
    missing = {dist: sorted(modules)[:3] for dist, modules in needed.items() if dist not in closure}
    assert not missing, (
        f"the {service} image lacks {sorted(missing)}, imported by {missing}; add them to "
        f"{info.dist}'s dependencies or the tributary-shared extra it uses"
    )


def test_the_gateway_image_has_no_llm_sdk() -> None:
    closure = image_closure(SERVICES["gateway"].dist)
    assert "fastapi" in closure  # the closure is the gateway's
    for dist in LLM_ONLY:
        assert dist not in closure, f"{dist} reaches the gateway image"
    # ...and nothing the gateway runs would need it.
    assert not set(LLM_ONLY) & set(imported_distributions("tributary_gateway"))


def test_workers_get_the_llm_sdk_through_the_extra() -> None:
    for service in ("planner", "agent-runner", "synthesizer"):
        assert set(LLM_ONLY) <= image_closure(SERVICES[service].dist), service


def test_importing_the_gateway_loads_no_llm_sdk() -> None:
    """At run time too: the runtime package loads its modules lazily."""
    code = (
        "import sys, tributary_gateway.app, tributary_gateway.__main__\n"
        "import tributary_shared.runtime as runtime\n"
        "runtime.HttpSettings\n"
        "loaded = sorted(m for m in ('openai', 'httpx2') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


# --- public surfaces -----------------------------------------------------------------------

PUBLIC_PACKAGES = (
    CORE,
    RUNTIME,
    "tributary_shared.runtime.kafka",
    "tributary_shared.runtime.llm",
    "tributary_shared.runtime.state",
    "tributary_shared.runtime.budget",
    DEVTOOLS,
    "tributary_devtools.contract",
    "tributary_devtools.admin",
)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_public_packages_state_their_surface(package: str) -> None:
    names = importlib.import_module(package).__all__
    assert names, package
    assert len(names) == len(set(names)), package
    # What ``from package import *`` binds (submodules named in __all__ included).
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)  # noqa: S102 - a fixed, trusted module name
    unresolved = [name for name in names if namespace.get(name) is None]
    assert not unresolved, f"{package}.__all__ names what it does not provide: {unresolved}"

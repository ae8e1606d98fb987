"""The images' Dockerfiles and the shared .dockerignore, checked against the workspace.

No Docker engine is needed: the Dockerfiles are parsed, and what they name (files,
distributions, modules, ports, health paths) is checked against the repository.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from tests.unit.test_deploy_settings import REPO, SERVICES, WORKERS, served_paths

DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [rest for name, rest in self.instructions if name == instruction]


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)


def parse_dockerfile(path: Path) -> Dockerfile:
    text = re.sub(r"\\\n", " ", path.read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), " ".join(rest.split())
        if instruction == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m[1], m[0]), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif not stages and instruction == "ARG":
            key, _, value = rest.partition("=")
            global_args[key] = value
        else:
            assert stages, f"{path}: {instruction} before FROM"
            stages[-1].instructions.append((instruction, rest))
    return Dockerfile(path, global_args, stages)


@cache
def dockerfile(service: str) -> Dockerfile:
    return parse_dockerfile(SERVICES[service].directory / "Dockerfile")


def exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list), text
    assert all(isinstance(v, str) for v in value), text
    return value


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in stage.args("ENV"):
        for token in shlex.split(rest):
            key, sep, value = token.partition("=")
            if sep:
                env[key] = value
    return env


def pyproject(directory: Path) -> dict[str, object]:
    return tomllib.loads((directory / "pyproject.toml").read_text())


def dist_name(directory: Path) -> str:
    project = pyproject(directory)["project"]
    assert isinstance(project, dict)
    return str(project["name"])


@cache
def workspace_members() -> dict[str, Path]:
    """distribution name -> member directory, from the root's workspace globs."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: dict[str, Path] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for directory in sorted(REPO.glob(pattern)):
            if (directory / "pyproject.toml").is_file():
                members[dist_name(directory)] = directory
    return members


def workspace_closure(dist: str) -> set[str]:
    """``dist`` and every workspace member it depends on, transitively."""
    members = workspace_members()
    seen: set[str] = set()
    todo = [dist]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        project = pyproject(members[name])["project"]
        assert isinstance(project, dict)
        for requirement in project.get("dependencies", []):
            dep = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
            if dep in members:
                todo.append(dep)
    return seen


# --- .dockerignore (the builder's pattern semantics, enough for this file) ---------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


@cache
def dockerignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, _pattern_regex(pattern.strip("/"))))
    return tuple(rules)


def is_ignored(relative: str) -> bool:
    """Whether a path is left out of the build context; the last matching rule wins."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, regex in dockerignore_rules():
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


def copied_sources(stage: Stage) -> list[str]:
    sources = []
    for rest in stage.args("COPY"):
        words = rest.split()
        if any(word.startswith("--from") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        sources.extend(words[:-1])
    return sources


# --- tests --------------------------------------------------------------------------------

ALL = sorted(SERVICES)


def test_every_service_has_a_dockerfile() -> None:
    for info in SERVICES.values():
        assert (info.directory / "Dockerfile").is_file(), info.name
        assert dist_name(info.directory) == info.dist


@pytest.mark.parametrize("service", ALL)
def test_multi_stage_with_the_same_base_for_build_and_runtime(service: str) -> None:
    df = dockerfile(service)
    assert len(df.stages) >= 3, "uv image, build stage, runtime stage"
    build, runtime = df.stage("build"), df.final
    # The virtualenv links to the build stage's interpreter: the runtime must have it.
    assert build.image == runtime.image
    assert re.fullmatch(r"python:3\.11[-.\w]*", runtime.image), runtime.image
    uv_stage = df.stage("uv")
    assert uv_stage.image.startswith("ghcr.io/astral-sh/uv:")
    assert any("--from=uv" in rest and "/uv" in rest for rest in build.args("COPY"))
    assert not any("--from=build" in rest for rest in build.args("COPY"))
    assert any("--from=build /app/.venv" in rest for rest in runtime.args("COPY"))


@pytest.mark.parametrize("service", ALL)
def test_uv_sync_in_two_steps_for_this_service_only(service: str) -> None:
    info = SERVICES[service]
    build = dockerfile(service).stage("build")
    syncs = [
        (index, rest)
        for index, (name, rest) in enumerate(build.instructions)
        if name == "RUN" and "uv sync" in rest
    ]
    assert len(syncs) == 2, syncs
    (deps_at, deps), (project_at, project) = syncs
    for command in (deps, project):
        assert f"--package {info.dist}" in command
        assert "--frozen" in command
        assert "--no-dev" in command
    assert "--no-install-workspace" in deps
    assert "--no-install-workspace" not in project
    # Sources arrive between the two steps, so dependency layers survive code changes.
    copies_before_deps = [rest for name, rest in build.instructions[:deps_at] if name == "COPY"]
    assert not any("/src" in rest for rest in copies_before_deps)
    copies_between = [
        rest for name, rest in build.instructions[deps_at:project_at] if name == "COPY"
    ]
    assert any("/src" in rest for rest in copies_between)


@pytest.mark.parametrize("service", ALL)
def test_copies_exactly_the_workspace_members_it_needs(service: str) -> None:
    info = SERVICES[service]
    build = dockerfile(service).stage("build")
    sources = copied_sources(build)
    assert "uv.lock" in sources
    assert "pyproject.toml" in sources
    members = workspace_members()
    needed = workspace_closure(info.dist)
    assert info.dist in needed
    for dist in needed:
        relative = members[dist].relative_to(REPO).as_posix()
        assert f"{relative}/pyproject.toml" in sources, (service, dist)
        assert f"{relative}/src" in sources, (service, dist)
    copied_members = {
        dist
        for dist, directory in members.items()
        if f"{directory.relative_to(REPO).as_posix()}/pyproject.toml" in sources
    }
    assert copied_members == needed, "one service per image"


@pytest.mark.parametrize("service", ALL)
def test_copied_sources_exist_and_reach_the_build_context(service: str) -> None:
    for source in copied_sources(dockerfile(service).stage("build")):
        path = REPO / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        files = [p for p in files if "__pycache__" not in p.parts]
        assert files, source
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert not is_ignored(relative), f"{relative} is excluded by .dockerignore"


@pytest.mark.parametrize("service", ALL)
def test_readme_present_when_the_package_metadata_names_one(service: str) -> None:
    info = SERVICES[service]
    project = pyproject(info.directory)["project"]
    assert isinstance(project, dict)
    readme = project.get("readme")
    if readme is None:
        return
    relative = f"{info.directory.relative_to(REPO).as_posix()}/{readme}"
    assert relative in copied_sources(dockerfile(service).stage("build"))


def test_dockerignore_keeps_local_state_out_and_sources_in() -> None:
    for relative in (
        ".git/HEAD",
        ".venv/bin/python",
        ".run/logs/gateway.log",
        ".cache/kafka-4.1.1/libs/x.jar",
        "tests/unit/test_events.py",
        "docs/deployment.md",
        "shared/src/tributary_shared/__pycache__/settings.cpython-311.pyc",
        "services/gateway/.venv/bin/python",
        ".env",
    ):
        assert is_ignored(relative), relative
    for relative in (
        "pyproject.toml",
        "uv.lock",
        "shared/src/tributary_shared/settings.py",
        "shared/src/tributary_shared/state/atomic.lua",
        "services/agent-runner/src/tributary_agent_runner/__main__.py",
        "tools/scripted-llm/README.md",
    ):
        assert not is_ignored(relative), relative


@pytest.mark.parametrize("service", ALL)
def test_runs_the_service_module_as_a_non_root_user(service: str) -> None:
    info = SERVICES[service]
    runtime = dockerfile(service).final
    (cmd,) = runtime.args("CMD")
    argv = exec_form(cmd)
    assert argv[:3] == ["python", "-m", info.module]
    spec = importlib.util.find_spec(info.module)
    assert spec is not None
    assert spec.origin is not None
    assert Path(spec.origin).is_relative_to(info.directory / "src"), spec.origin
    assert importlib.util.find_spec(f"{info.module}.__main__") is not None
    users = runtime.args("USER")
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root"), user
    assert "/app/.venv/bin" in env_of(runtime).get("PATH", "")


@pytest.mark.parametrize("service", ALL)
def test_healthcheck_hits_a_served_path_on_the_exposed_port(service: str) -> None:
    runtime = dockerfile(service).final
    (healthcheck,) = runtime.args("HEALTHCHECK")
    _options, _, command = healthcheck.partition("CMD ")
    script = " ".join(exec_form(command))
    match = re.search(r"http://127\.0\.0\.1:(?P<port>[^/]+)(?P<path>/[\w/]+)", script)
    assert match, script
    assert match["path"] in served_paths(service)
    exposed = {int(word) for rest in runtime.args("EXPOSE") for word in rest.split()}
    env = env_of(runtime)
    if service == "scripted-llm":
        # Address given on the command line; the check uses the same port.
        port = int(match["port"])
        argv = exec_form(runtime.args("CMD")[0])
        assert argv[argv.index("--port") + 1] == str(port)
        assert argv[argv.index("--host") + 1] == "0.0.0.0"
    else:
        port = int(env["TRIBUTARY_HTTP_PORT"])
        assert env["TRIBUTARY_HTTP_HOST"] == "0.0.0.0"
        # The check follows TRIBUTARY_HTTP_PORT at run time, defaulting to the image's.
        assert "os.environ.get('TRIBUTARY_HTTP_PORT'" in script
        assert f"'{port}'" in script
    assert exposed == {port}


def test_gateway_image_checks_readiness_and_workers_check_health() -> None:
    assert "/readyz" in dockerfile("gateway").final.args("HEALTHCHECK")[0]
    for worker in WORKERS:
        assert "/health'" in dockerfile(worker).final.args("HEALTHCHECK")[0]


def test_parser_sees_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        (SERVICES["planner"].directory / "Dockerfile")
        .read_text()
        .replace("USER 10001:10001", "USER root")
    )
    runtime = parse_dockerfile(broken).final
    assert runtime.args("USER") == ["root"]

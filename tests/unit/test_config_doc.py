"""docs/configuration.md: generated from the settings classes' fields alone.

That the committed page matches the code is checked with every other generated
document in test_generated_docs.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tributary_devstack.services import SERVICE_NAMES
from tributary_devtools.config_doc import (
    READERS,
    REGENERATE,
    MissingDescriptionError,
    UnlistedSettingsError,
    env_names,
    keys_of,
    qualified_name,
    render_configuration_doc,
    settings_classes,
    settings_of,
    stack_config,
)
from tributary_devtools.config_doc import sources as config_sources

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def doc() -> str:
    return render_configuration_doc()


def _row(doc: str, variable: str) -> list[str]:
    """The cells of the first table row whose Variable cell starts with ``variable``."""
    for line in doc.splitlines():
        if line.startswith(f"| `{variable}`"):
            return [cell.strip() for cell in line.strip("|").split(" | ")]
    raise AssertionError(f"no row for {variable}")


def _documented_classes() -> list[type[BaseSettings]]:
    return [*settings_classes(), stack_config()]


def _entry_models(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """The JSON entry models inside a class's fields, and theirs, recursively."""
    rows = settings_of(cls) if issubclass(cls, BaseSettings) else keys_of(cls)
    for row in rows:
        for model in row.models:
            yield model
            yield from _entry_models(model)


def test_rendering_ignores_the_environment(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_HTTP_PORT", "1234")
    monkeypatch.setenv("TRIBUTARY_REPO_ROOT", "/somewhere/else")
    monkeypatch.setenv("TRIBUTARY_LLM_API_KEY", "sk-from-the-environment")
    again = render_configuration_doc()
    assert again == doc
    assert "1234" not in again
    assert "sk-from-the-environment" not in again


# -- descriptions ----------------------------------------------------------------------------


def test_every_settings_field_has_a_description() -> None:
    classes: list[type[BaseModel]] = list(_documented_classes())
    classes += [m for cls in _documented_classes() for m in _entry_models(cls)]
    # A walk that found nothing would make this vacuous.
    assert {"LLMSettings", "McpSettings", "McpStdioServer", "ModelPrice", "StackConfig"} <= {
        cls.__name__ for cls in classes
    }
    undocumented = [
        f"{qualified_name(cls)}.{name}"
        for cls in classes
        for name, field in cls.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not undocumented, (
        f"give these fields Field(description=...) and run `{REGENERATE}`: {undocumented}"
    )


def test_the_page_shows_each_fields_own_description(doc: str) -> None:
    from tributary_agent_runner.tools.mcp_config import McpSettings

    described = McpSettings.model_fields["retry_interval_s"].description
    assert described is not None
    assert _row(doc, "TRIBUTARY_MCP_RETRY_INTERVAL_S")[3] == " ".join(described.split())
    stack_section = doc[doc.index("## Local stack") :]
    for cls in _documented_classes():
        # The stack's TRIBUTARY_LLM_BASE_URL has a row of its own, in the last section.
        section = stack_section if cls is stack_config() else doc
        for setting in settings_of(cls):
            assert _row(section, setting.names[0])[3] == setting.description.replace("|", "\\|")


class _Undocumented(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNDOCUMENTED_")

    limit: int = Field(default=3, description="   ")


def test_a_field_without_a_description_stops_the_generator() -> None:
    with pytest.raises(MissingDescriptionError, match=r"_Undocumented\.limit"):
        settings_of(_Undocumented)


# -- who reads what -------------------------------------------------------------------------


def test_every_settings_class_is_in_the_readers_table() -> None:
    found = {qualified_name(cls) for cls in settings_classes()}
    assert "tributary_shared.runtime.settings.LLMSettings" in found
    assert "tributary_agent_runner.tools.mcp_config.McpSettings" in found
    assert "tributary_agent_runner.tools.web_search.WebSearchSettings" in found
    missing = sorted(found - set(READERS))
    assert not missing, f"add these settings classes to READERS in config_doc/sources.py: {missing}"
    stale = sorted(set(READERS) - found)
    assert not stale, f"READERS names classes that no longer exist: {stale}"


def test_readers_are_real_services() -> None:
    for name, services in READERS.items():
        assert services, name
        assert set(services) <= set(SERVICE_NAMES), name
        assert len(set(services)) == len(services), name


def test_a_class_missing_from_the_table_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readers = dict(READERS)
    del readers["tributary_planner.settings.PlannerSettings"]
    monkeypatch.setattr(config_sources, "READERS", readers)
    with pytest.raises(UnlistedSettingsError, match="PlannerSettings"):
        render_configuration_doc()


def test_sections_name_their_readers(doc: str) -> None:
    headings = [line for line in doc.splitlines() if line.startswith("## ")]
    assert headings == [
        "## All services",
        "## Workers",
        "## Planner, agent-runner, synthesizer and gateway",
        "## Gateway and planner",
        "## Gateway",
        "## Planner",
        "## Planner and agent-runner",
        "## Agent-runner",
        "## Local stack (make up / make test)",
    ]
    assert "Read by `planner`, `agent-runner`, `synthesizer`." in doc


def test_the_stack_section_names_what_the_stack_sets_itself(doc: str) -> None:
    stack = doc[doc.index("## Local stack") :]
    for variable in ("TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS", "TRIBUTARY_REDIS_URL"):
        assert f"`{variable}`" in stack.split("| Variable |")[0]


# -- names, types, defaults -----------------------------------------------------------------


def test_every_variable_of_every_class_is_documented(doc: str) -> None:
    for cls in _documented_classes():
        for setting in settings_of(cls):
            row = _row(doc, setting.names[0])
            assert row[1] == setting.default
            assert row[2] == setting.kind


def test_llm_base_url_lists_openai_base_url_as_also_read(doc: str) -> None:
    row = _row(doc, "TRIBUTARY_LLM_BASE_URL")
    assert row[0] == "`TRIBUTARY_LLM_BASE_URL` (also read: `OPENAI_BASE_URL`)"
    assert row[1] == "unset"
    key = _row(doc, "TRIBUTARY_LLM_API_KEY")
    assert key[0] == "`TRIBUTARY_LLM_API_KEY` (also read: `OPENAI_API_KEY`)"
    assert key[2] == "str (secret)"


def test_types_constraints_and_defaults(doc: str) -> None:
    assert _row(doc, "TRIBUTARY_HTTP_PORT")[1:3] == ["`8000`", "int, >= 0, <= 65535"]
    assert _row(doc, "TRIBUTARY_LOG_LEVEL")[1:3] == [
        "`INFO`",
        "one of `DEBUG`, `INFO`, `WARNING`, `ERROR`",
    ]
    assert _row(doc, "TRIBUTARY_PLANNER_MODEL")[2] == "str, non-empty"
    assert _row(doc, "TRIBUTARY_LLM_TIMEOUT_S")[2] == "float, > 0"
    assert _row(doc, "TRIBUTARY_SERVICE_INSTANCE")[1] == '`""`'
    assert _row(doc, "TRIBUTARY_KAFKA_AUTO_CREATE_TOPICS")[1:3] == ["`false`", "bool"]
    assert _row(doc, "TRIBUTARY_MODEL_PRICES")[1] == "`{}`"
    assert _row(doc, "TRIBUTARY_MODEL_PRICES")[2].startswith("JSON object")
    assert _row(doc, "TRIBUTARY_MCP_SERVERS")[2].startswith("JSON array")
    assert "### Entries of `TRIBUTARY_MCP_SERVERS`" in doc
    assert "### Entries of `TRIBUTARY_MODEL_PRICES`" in doc
    # The local stack's default root depends on the checkout, so it is not printed.
    assert _row(doc, "TRIBUTARY_REPO_ROOT")[1] == "computed at start"
    assert _row(doc, "TRIBUTARY_RUN_DIR")[1] == "`.run`"


def test_env_names_are_the_ones_pydantic_settings_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith(("TRIBUTARY_", "OPENAI_")):
            monkeypatch.delenv(name)
    from tributary_agent_runner.settings import AgentSettings
    from tributary_shared.runtime.settings import HttpSettings, LLMSettings

    llm = LLMSettings.model_fields["base_url"]
    assert env_names(LLMSettings, "base_url", llm) == ("TRIBUTARY_LLM_BASE_URL", "OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://second.example/v1")
    assert LLMSettings().base_url == "http://second.example/v1"
    monkeypatch.setenv("TRIBUTARY_LLM_BASE_URL", "http://first.example/v1")
    assert LLMSettings().base_url == "http://first.example/v1"

    port = HttpSettings.model_fields["http_port"]
    assert env_names(HttpSettings, "http_port", port) == ("TRIBUTARY_HTTP_PORT",)
    monkeypatch.setenv("TRIBUTARY_HTTP_PORT", "8123")
    assert HttpSettings().http_port == 8123

    limit = AgentSettings.model_fields["max_iterations"]
    assert env_names(AgentSettings, "max_iterations", limit) == ("TRIBUTARY_AGENT_MAX_ITERATIONS",)
    monkeypatch.setenv("TRIBUTARY_AGENT_MAX_ITERATIONS", "9")
    assert AgentSettings().max_iterations == 9


def _github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_into_the_reference_point_at_its_sections(doc: str) -> None:
    anchors = {_github_anchor(line.lstrip("#")) for line in doc.splitlines() if line[:1] == "#"}
    links = [
        (path.name, anchor)
        for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
        for anchor in re.findall(r"configuration\.md#([\w-]+)", path.read_text(encoding="utf-8"))
    ]
    assert ("tools.md", "entries-of-tributary_mcp_servers") in links
    broken = [link for link in links if link[1] not in anchors]
    assert not broken, f"links to sections docs/configuration.md does not have: {broken}"


def test_intro_says_how_settings_are_read(doc: str) -> None:
    assert doc.startswith("# Configuration\n")
    assert f"Generated by `{REGENERATE}`" in doc
    assert "read once when a process starts" in doc
    assert "never logged" in doc


# -- secrets -------------------------------------------------------------------------------


class _Leaky(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEAKY_")

    token: SecretStr = Field(default=SecretStr("s3cr3t-token-value"), description="A token.")
    api_key: str = Field(
        default="plain-but-secret-key",
        validation_alias=AliasChoices("LEAKY_API_KEY", "OTHER_API_KEY"),
        description="A key.",
    )
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="Headers.")
    mode: Literal["a", "b"] = Field(default="a", description="A mode.")


def test_secret_defaults_are_never_printed() -> None:
    rows = {s.names[0]: s for s in settings_of(_Leaky)}
    assert rows["LEAKY_TOKEN"].secret
    assert rows["LEAKY_TOKEN"].default == "hidden"
    assert rows["LEAKY_API_KEY"].secret  # by its name, although typed str
    assert rows["LEAKY_API_KEY"].default == "hidden"
    assert rows["LEAKY_API_KEY"].names == ("LEAKY_API_KEY", "OTHER_API_KEY")
    assert rows["LEAKY_HEADERS"].default == "`{}`"
    assert not rows["LEAKY_MODE"].secret
    assert rows["LEAKY_MODE"].default == "`a`"
    text = "\n".join(f"{s.default} {s.kind} {s.description}" for s in rows.values())
    assert "s3cr3t" not in text
    assert "plain-but-secret-key" not in text


def test_the_doc_shows_no_secret_default(doc: str) -> None:
    secrets = [s for cls in _documented_classes() for s in settings_of(cls) if s.secret]
    assert {s.names[0] for s in secrets} >= {
        "TRIBUTARY_LLM_API_KEY",
        "TRIBUTARY_WEB_SEARCH_BRAVE_API_KEY",
    }
    for setting in secrets:
        assert setting.default in ("unset", "required", "hidden", "`{}`", "`[]`"), setting
        assert _row(doc, setting.names[0])[1] == setting.default
    for line in doc.splitlines():
        if "(secret)" in line and line.startswith("| "):
            default = line.strip("|").split(" | ")[1].strip()
            assert default in ("unset", "required", "hidden", "`{}`", "`[]`"), line

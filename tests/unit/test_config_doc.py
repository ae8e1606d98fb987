"""docs/configuration.md: generated from the settings classes, and never out of date."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pytest
from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tributary_devstack import config_doc
from tributary_devstack.cli import main
from tributary_devstack.config import StackConfig
from tributary_devstack.config_doc import (
    DESCRIPTIONS,
    DOC_PATH,
    READERS,
    REGENERATE,
    env_names,
    own_description,
    qualified_name,
    render_configuration_doc,
    settings_classes,
    settings_of,
)
from tributary_devstack.services import SERVICE_NAMES

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
    return [*settings_classes(), StackConfig]


# -- no drift ------------------------------------------------------------------------------


def test_committed_doc_matches_the_code(doc: str) -> None:
    path = REPO / DOC_PATH
    assert path.is_file(), f"{DOC_PATH} is missing: run `{REGENERATE}`"
    assert path.read_text(encoding="utf-8") == doc, (
        f"{DOC_PATH} is out of date with the settings classes: run `{REGENERATE}`"
    )


def test_rendering_ignores_the_environment(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_HTTP_PORT", "1234")
    monkeypatch.setenv("TRIBUTARY_REPO_ROOT", "/somewhere/else")
    monkeypatch.setenv("TRIBUTARY_LLM_API_KEY", "sk-from-the-environment")
    again = render_configuration_doc()
    assert again == doc
    assert "1234" not in again
    assert "sk-from-the-environment" not in again


# -- who reads what -------------------------------------------------------------------------


def test_every_settings_class_is_in_the_readers_table() -> None:
    found = {qualified_name(cls) for cls in settings_classes()}
    # A walk that found nothing would make this vacuous.
    assert "tributary_shared.runtime.settings.LLMSettings" in found
    assert "tributary_agent_runner.tools.mcp_config.McpSettings" in found
    assert "tributary_agent_runner.tools.web_search.WebSearchSettings" in found
    missing = sorted(found - set(READERS))
    assert not missing, f"add these settings classes to READERS in config_doc.py: {missing}"
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
    monkeypatch.setattr(config_doc, "READERS", readers)
    with pytest.raises(config_doc.UnlistedSettingsError, match="PlannerSettings"):
        render_configuration_doc()


def test_sections_name_their_readers(doc: str) -> None:
    headings = [line for line in doc.splitlines() if line.startswith("## ")]
    assert headings == [
        "## All services",
        "## Workers",
        "## Gateway and planner",
        "## Gateway",
        "## Planner",
        "## Agent-runner",
        "## Local stack (make up / make test)",
    ]
    assert "Read by `planner`, `agent-runner`, `synthesizer`." in doc


# -- content -------------------------------------------------------------------------------


def test_every_variable_of_every_class_is_documented(doc: str) -> None:
    for cls in _documented_classes():
        for setting in settings_of(cls):
            row = _row(doc, setting.names[0])
            assert row[2] == setting.kind
            assert setting.description, (
                f"{cls.__name__}: {setting.names[0]} has no description; give the field "
                "Field(description=...) and run " + REGENERATE
            )


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


def test_intro_says_how_settings_are_read(doc: str) -> None:
    assert doc.startswith("# Configuration\n")
    assert REGENERATE in doc
    assert "read once when a process starts" in doc
    assert "never logged" in doc


# -- secrets -------------------------------------------------------------------------------


class _Leaky(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEAKY_")

    token: SecretStr = SecretStr("s3cr3t-token-value")
    api_key: str = Field(
        default="plain-but-secret-key",
        validation_alias=AliasChoices("LEAKY_API_KEY", "OTHER_API_KEY"),
    )
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    mode: Literal["a", "b"] = "a"


def test_secret_defaults_are_never_printed() -> None:
    rows = {s.names[0]: s for s in settings_of(_Leaky)}
    assert rows["LEAKY_TOKEN"].secret
    assert rows["LEAKY_TOKEN"].default == "hidden"
    assert rows["LEAKY_API_KEY"].secret  # by its name, although typed str
    assert rows["LEAKY_API_KEY"].default == "hidden"
    assert rows["LEAKY_API_KEY"].names == ("LEAKY_API_KEY", "OTHER_API_KEY")
    assert rows["LEAKY_HEADERS"].default == "`{}`"
    assert not rows["LEAKY_MODE"].secret
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


# -- the descriptions table ------------------------------------------------------------------


def test_descriptions_table_names_real_fields_without_their_own_text() -> None:
    from tributary_agent_runner.tools.mcp_config import McpHttpServer, McpStdioServer
    from tributary_shared.runtime.settings import ModelPrice

    classes: list[type[BaseModel]] = [
        *_documented_classes(),
        McpStdioServer,
        McpHttpServer,
        ModelPrice,
    ]
    models = {cls.__name__: cls for cls in classes}
    for key in DESCRIPTIONS:
        class_name, field = key.split(".")
        assert class_name in models, f"DESCRIPTIONS: unknown class in {key}"
        cls = models[class_name]
        assert field in cls.model_fields, f"DESCRIPTIONS: {key} is not a field"
        assert not own_description(cls, field), (
            f"{key} is described in the code now: remove it from DESCRIPTIONS"
        )


def test_doc_comments_are_used_as_descriptions(doc: str) -> None:
    # mcp_config.py documents its fields with ``#:`` comments.
    row = _row(doc, "TRIBUTARY_MCP_RETRY_INTERVAL_S")
    assert row[3].startswith("First wait before trying again a server")
    assert "`retry_max_interval_s`" in row[3]


# -- the command -----------------------------------------------------------------------------


def test_check_fails_until_write_regenerates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRIBUTARY_REPO_ROOT", str(tmp_path))
    assert main(["config-doc", "check"]) == 1
    assert REGENERATE in capsys.readouterr().err

    assert main(["config-doc", "write"]) == 0
    written = (tmp_path / DOC_PATH).read_text(encoding="utf-8")
    assert written == render_configuration_doc()
    assert main(["config-doc", "check"]) == 0

    (tmp_path / DOC_PATH).write_text(written.replace("TRIBUTARY_HTTP_PORT", "TRIBUTARY_PORT"))
    assert main(["config-doc", "check"]) == 1
    err = capsys.readouterr().err
    assert "does not match the code" in err
    assert "+| `TRIBUTARY_HTTP_PORT`" in err

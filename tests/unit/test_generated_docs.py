"""Every generated document: one registry, one command, and never out of date."""

from __future__ import annotations

from pathlib import Path

import pytest

from tributary_devtools import documents
from tributary_devtools.__main__ import main
from tributary_devtools.config_doc import DOC_PATH as CONFIGURATION_DOC
from tributary_devtools.contract import files as contract_files
from tributary_devtools.contract.files import GeneratedFile
from tributary_devtools.documents import REGENERATE, generated_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("generated", generated_files(), ids=lambda g: g.path)
def test_committed_documents_match_the_code(generated: GeneratedFile) -> None:
    committed = generated.committed(ROOT)
    assert committed is not None, f"{generated.path} is missing: run `{REGENERATE}`"
    assert committed == generated.render(), (
        f"{generated.path} is out of date with the code: run `{REGENERATE}`\n"
        + generated.diff(ROOT)
    )


def test_the_registry_holds_the_configuration_and_every_contract_document() -> None:
    paths = [f.path for f in generated_files()]
    assert CONFIGURATION_DOC in paths
    assert {"docs/asyncapi.yaml", "docs/events.md"} <= set(paths)
    assert len(paths) == len(set(paths)), "a document is generated twice"
    for generated in contract_files.GENERATED_FILES:
        assert generated in generated_files()


def test_a_document_added_to_the_contract_list_is_covered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    added = GeneratedFile("docs/added.md", lambda: "# Added\n")
    monkeypatch.setattr(contract_files, "GENERATED_FILES", (*contract_files.GENERATED_FILES, added))
    assert added in generated_files()


def test_check_fails_until_write_regenerates_every_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ["--root", str(tmp_path)]
    assert main(["check", *root]) == 1
    err = capsys.readouterr().err
    assert f"{CONFIGURATION_DOC} is missing" in err
    assert "docs/asyncapi.yaml is missing" in err
    assert REGENERATE in err

    assert main(["write", *root]) == 0
    out = capsys.readouterr().out
    for generated in generated_files():
        assert f"wrote {generated.path}" in out
        assert (tmp_path / generated.path).read_text(encoding="utf-8") == generated.render()
    assert main(["check", *root]) == 0
    assert main(["write", *root]) == 0
    assert "wrote" not in capsys.readouterr().out

    page = tmp_path / CONFIGURATION_DOC
    page.write_text(page.read_text().replace("TRIBUTARY_HTTP_PORT", "TRIBUTARY_PORT"))
    assert main(["check", *root]) == 1
    err = capsys.readouterr().err
    assert f"{CONFIGURATION_DOC} does not match the code" in err
    assert "+| `TRIBUTARY_HTTP_PORT`" in err
    assert "events.md" not in err


def test_write_leaves_up_to_date_documents_alone(tmp_path: Path) -> None:
    assert main(["write", "--root", str(tmp_path)]) == 0
    events = tmp_path / "docs" / "events.md"
    before = events.stat().st_mtime_ns
    (tmp_path / CONFIGURATION_DOC).write_text("stale\n")
    assert main(["write", "--root", str(tmp_path)]) == 0
    assert events.stat().st_mtime_ns == before
    assert (tmp_path / CONFIGURATION_DOC).read_text() != "stale\n"


def test_other_files_are_part_of_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = GeneratedFile("docs/extra.md", lambda: "# Extra\n")
    monkeypatch.setattr(documents, "OTHER_FILES", (*documents.OTHER_FILES, extra))
    assert generated_files()[-1] == extra

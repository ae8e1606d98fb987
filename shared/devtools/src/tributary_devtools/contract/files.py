"""The generated documents, where they live, and how to tell whether they drifted.

The committed copies are what people and tools read; comparing them with a
fresh rendering (in ``check`` and in the unit suite) keeps them honest.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tributary_devtools.contract.architecture import (
    ARCHITECTURE_DOC,
    DEPLOYMENT_DOC,
    render_architecture_doc,
    render_deployment_doc,
)
from tributary_devtools.contract.asyncapi import render_asyncapi
from tributary_devtools.contract.events_doc import REGENERATE, render_events_doc

__all__ = ["GENERATED_FILES", "REGENERATE", "GeneratedFile", "find_root"]


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    path: str
    """Relative to the repository root."""
    render: Callable[[], str]

    def committed(self, root: Path) -> str | None:
        target = root / self.path
        return target.read_text(encoding="utf-8") if target.is_file() else None

    def diff(self, root: Path, *, context: int = 2) -> str:
        """A unified diff from the committed copy to the generated one."""
        committed = self.committed(root) or ""
        return "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                self.render().splitlines(keepends=True),
                fromfile=f"{self.path} (committed)",
                tofile=f"{self.path} (generated)",
                n=context,
            )
        )


GENERATED_FILES: tuple[GeneratedFile, ...] = (
    GeneratedFile("docs/asyncapi.yaml", render_asyncapi),
    GeneratedFile("docs/events.md", render_events_doc),
    GeneratedFile(ARCHITECTURE_DOC, render_architecture_doc),
    GeneratedFile(DEPLOYMENT_DOC, render_deployment_doc),
)


def find_root(start: Path) -> Path:
    """The uv workspace root at or above ``start`` (its pyproject declares the workspace)."""
    for candidate in (start, *start.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            if "workspace" in config.get("tool", {}).get("uv", {}):
                return candidate
    raise FileNotFoundError(f"no uv workspace root at or above {start}")

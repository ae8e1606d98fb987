"""``write`` and ``check`` over any list of generated documents.

The committed copies are what people and tools read; comparing them with a
fresh rendering (in ``check`` and in the unit suite) keeps them honest. Which
documents exist is said in :mod:`tributary_devtools.documents`; how one is
rendered and compared, by :class:`~tributary_devtools.contract.files.GeneratedFile`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tributary_devtools.contract.files import GeneratedFile, find_root

__all__ = ["REGENERATE_ALL", "check_or_write", "command_line", "stale_files", "write_files"]

#: How a person regenerates every generated document (see :mod:`tributary_devtools.documents`).
REGENERATE_ALL = "make docs"

#: Longer diffs are cut in ``check``'s report: the first lines show what drifted.
MAX_DIFF_LINES = 60


def stale_files(root: Path, files: Sequence[GeneratedFile]) -> list[GeneratedFile]:
    """The files whose committed copy is missing or differs from a fresh rendering."""
    return [f for f in files if f.committed(root) != f.render()]


def write_files(root: Path, files: Sequence[GeneratedFile]) -> list[GeneratedFile]:
    """Write the stale files; returns what changed (nothing else is touched)."""
    changed = stale_files(root, files)
    for generated in changed:
        target = root / generated.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(generated.render(), encoding="utf-8")
    return changed


def check_or_write(
    command: Literal["write", "check"],
    root: Path,
    files: Sequence[GeneratedFile],
    *,
    regenerate: str,
) -> int:
    """``write`` or ``check`` the files and report on them; the exit status of the command.

    ``check`` returns 1 and shows each stale file's diff, then how to regenerate
    (``regenerate``); ``write`` always returns 0.
    """
    if command == "write":
        changed = write_files(root, files)
        for generated in changed:
            print(f"wrote {generated.path}")
        if not changed:
            print("generated documents are up to date")
        return 0
    stale = stale_files(root, files)
    if not stale:
        print("generated documents are up to date")
        return 0
    for generated in stale:
        if generated.committed(root) is None:
            print(f"{generated.path} is missing.", file=sys.stderr)
            continue
        print(f"{generated.path} does not match the code:", file=sys.stderr)
        diff = generated.diff(root).splitlines()
        print("\n".join(diff[:MAX_DIFF_LINES]), file=sys.stderr)
        if len(diff) > MAX_DIFF_LINES:
            print(f"... ({len(diff) - MAX_DIFF_LINES} more diff lines)", file=sys.stderr)
    print(f"Regenerate them with: {regenerate}", file=sys.stderr)
    return 1


def command_line(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    files: Sequence[GeneratedFile],
    regenerate: str,
) -> int:
    """Parse ``write|check [--root DIR]`` and run it over ``files``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("command", choices=["write", "check"])
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: the uv workspace at or above the current directory)",
    )
    args = parser.parse_args(argv)
    try:
        root: Path = args.root if args.root is not None else find_root(Path.cwd())
    except FileNotFoundError as error:
        parser.error(f"{error}; run it inside the repository or pass --root")
    return check_or_write(args.command, root, files, regenerate=regenerate)

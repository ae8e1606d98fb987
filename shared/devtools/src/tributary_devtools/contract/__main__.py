"""``python -m tributary_devtools.contract write|check``: regenerate or verify docs/.

``check`` is meant for CI and pre-commit: it exits 1 and shows the difference
when the committed documents no longer match what the code generates.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tributary_devtools.contract.files import REGENERATE, find_root, stale_files, write_files

_MAX_DIFF_LINES = 60


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tributary_devtools.contract",
        description="Generate the event contract documents (docs/asyncapi.yaml, docs/events.md).",
    )
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
    if args.command == "write":
        changed = write_files(root)
        for generated in changed:
            print(f"wrote {generated.path}")
        if not changed:
            print("contract documents are up to date")
        return 0
    stale = stale_files(root)
    if not stale:
        print("contract documents are up to date")
        return 0
    for generated in stale:
        if generated.committed(root) is None:
            print(f"{generated.path} is missing.", file=sys.stderr)
            continue
        print(f"{generated.path} does not match the code:", file=sys.stderr)
        diff = generated.diff(root).splitlines()
        print("\n".join(diff[:_MAX_DIFF_LINES]), file=sys.stderr)
        if len(diff) > _MAX_DIFF_LINES:
            print(f"... ({len(diff) - _MAX_DIFF_LINES} more diff lines)", file=sys.stderr)
    print(f"Regenerate them with: {REGENERATE}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

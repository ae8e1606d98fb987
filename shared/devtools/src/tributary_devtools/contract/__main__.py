"""``python -m tributary_devtools.contract write|check``: regenerate or verify docs/.

Covers the contract documents only; ``python -m tributary_devtools write|check``
(``make docs``) covers them and every other generated document.
``check`` is meant for CI and pre-commit: it exits 1 and shows the difference
when the committed documents no longer match what the code generates.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tributary_devtools.contract.files import GENERATED_FILES, REGENERATE
from tributary_devtools.generated import command_line


def main(argv: Sequence[str] | None = None) -> int:
    return command_line(
        argv,
        prog="python -m tributary_devtools.contract",
        description="Generate the event contract documents ("
        + ", ".join(f.path for f in GENERATED_FILES)
        + ").",
        files=GENERATED_FILES,
        regenerate=REGENERATE,
    )


if __name__ == "__main__":
    sys.exit(main())

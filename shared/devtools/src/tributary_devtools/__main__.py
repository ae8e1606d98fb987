"""``python -m tributary_devtools write|check``: every generated document at once.

``make docs`` runs ``write``; ``check`` (``make docs-check``) exits 1 and shows
the difference when a committed document no longer matches the code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tributary_devtools.documents import REGENERATE, generated_files
from tributary_devtools.generated import command_line


def main(argv: Sequence[str] | None = None) -> int:
    files = generated_files()
    return command_line(
        argv,
        prog="python -m tributary_devtools",
        description="Regenerate (write) or verify (check) the generated documents: "
        + ", ".join(f.path for f in files)
        + ".",
        files=files,
        regenerate=REGENERATE,
    )


if __name__ == "__main__":
    sys.exit(main())

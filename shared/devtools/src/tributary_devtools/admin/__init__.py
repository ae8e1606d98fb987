"""Operator commands: ``python -m tributary_devtools.admin --help``."""

from tributary_devtools.admin.deadletters import (
    REDRIVEN_HEADER,
    StoredLetter,
    read_letters,
    redrive,
    summary_line,
)

__all__ = ["REDRIVEN_HEADER", "StoredLetter", "read_letters", "redrive", "summary_line"]

"""The service table of docs/architecture.md, generated from the topology.

The rest of that page is prose written by hand; only the part between the
``TOPOLOGY_BEGIN`` and ``TOPOLOGY_END`` marker lines is generated, so the table
cannot say that a service consumes or emits something the declaration does not.

Rendering the whole page reads the hand-written prose from this checkout (the
tooling runs from a checkout, never from an installed image) and splices in a
fresh table; the page therefore drifts only when its table does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tributary_shared.core.topology import ServiceRole, deployed_roles, topic_of

__all__ = [
    "ARCHITECTURE_DOC",
    "TOPOLOGY_BEGIN",
    "TOPOLOGY_END",
    "render_architecture_doc",
    "render_service_table",
    "render_topology_block",
    "splice_block",
]

ARCHITECTURE_DOC = "docs/architecture.md"
TOPOLOGY_BEGIN = "<!-- topology:begin -->"
TOPOLOGY_END = "<!-- topology:end -->"
_NOTE = (
    "<!-- Generated from tributary_shared.core.topology by `uv run python -m "
    "tributary_devtools.contract write`; edit the declaration, not this table. -->"
)


def render_architecture_doc() -> str:
    """docs/architecture.md as committed in this checkout, with a fresh service table."""
    committed = (_checkout_root() / ARCHITECTURE_DOC).read_text(encoding="utf-8")
    return splice_block(committed, render_topology_block())


def render_topology_block() -> str:
    """What goes between the markers: a note saying where it comes from, and the table.

    Blank lines around the table keep Markdown renderers from reading the
    marker comments as part of it.
    """
    return f"{_NOTE}\n\n{render_service_table()}\n"


def render_service_table() -> str:
    """The Markdown table, one row per deployed service, in declaration order."""
    header = ("Service", "Consumes (group)", "Does", "Emits")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
        *(_row(role) for role in deployed_roles()),
    ]
    return "\n".join(lines) + "\n"


def splice_block(
    document: str, block: str, *, begin: str = TOPOLOGY_BEGIN, end: str = TOPOLOGY_END
) -> str:
    """``document`` with the lines between ``begin`` and ``end`` replaced by ``block``.

    Markers that are missing, repeated or out of order are an error rather
    than a guess at where the block belongs.
    """
    lines = document.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == begin]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\n") == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(
            f"expected one {begin!r} line followed by one {end!r} line "
            f"(found {len(starts)} and {len(ends)})"
        )
    return "".join([*lines[: starts[0] + 1], block, *lines[ends[0] :]])


def _row(role: ServiceRole) -> str:
    cells = (role.service, _consumes(role), _cell(role.does), _code(role.emits))
    return "| " + " | ".join(cells) + " |"


def _consumes(role: ServiceRole) -> str:
    """Per subscribed topic, the event types the service acts on; then the group."""
    if role.group_id is None:
        return "—"
    per_topic = [
        f"{_code([t for t in role.consumes if topic_of(t) == topic])} from `{topic.name}`"
        for topic in role.topics
    ]
    return "; ".join(per_topic) + f" (`{role.group_id}`)"


def _code(items: Sequence[str]) -> str:
    return ", ".join(f"`{item}`" for item in items) or "—"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _checkout_root() -> Path:
    """The repository this package is installed from (editable, in the uv workspace)."""
    here = Path(__file__).resolve()
    for candidate in here.parents:
        if (candidate / ARCHITECTURE_DOC).is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise FileNotFoundError(f"no checkout with {ARCHITECTURE_DOC} above {here}")

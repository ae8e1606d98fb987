"""The topology tables of docs/architecture.md and docs/deployment.md, generated.

The rest of those pages is prose written by hand; only the part between the
``TOPOLOGY_BEGIN`` and ``TOPOLOGY_END`` marker lines is generated, so a table
cannot say that a service consumes or emits something the declaration does not,
nor give a topic other partitions or consumers than the code does.

Rendering the whole page reads the hand-written prose from this checkout (the
tooling runs from a checkout, never from an installed image) and splices in a
fresh table; the page therefore drifts only when its table does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tributary_shared.core.topics import ALL_TOPICS, TopicSpec
from tributary_shared.core.topology import ServiceRole, internal_roles, subscribers_of, topic_of

__all__ = [
    "ARCHITECTURE_DOC",
    "DEPLOYMENT_DOC",
    "TOPOLOGY_BEGIN",
    "TOPOLOGY_END",
    "render_architecture_doc",
    "render_deployment_doc",
    "render_service_table",
    "render_topic_table",
    "render_topology_block",
    "splice_block",
]

ARCHITECTURE_DOC = "docs/architecture.md"
DEPLOYMENT_DOC = "docs/deployment.md"
TOPOLOGY_BEGIN = "<!-- topology:begin -->"
TOPOLOGY_END = "<!-- topology:end -->"
_NOTE = (
    "<!-- Generated from tributary_shared.core.topology by `make docs`; "
    "edit the declaration, not this table. -->"
)


def render_architecture_doc() -> str:
    """docs/architecture.md as committed in this checkout, with a fresh service table."""
    committed = (_checkout_root() / ARCHITECTURE_DOC).read_text(encoding="utf-8")
    return splice_block(committed, render_topology_block())


def render_deployment_doc() -> str:
    """docs/deployment.md as committed in this checkout, with a fresh topic table."""
    committed = (_checkout_root() / DEPLOYMENT_DOC).read_text(encoding="utf-8")
    return splice_block(committed, f"{_NOTE}\n\n{render_topic_table()}\n")


def render_topic_table() -> str:
    """Topics with their partition counts and the consumer groups that read them."""
    header = ("Topic", "Partitions", "Consumed by (group)")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
        *(f"| `{topic.name}` | {topic.partitions} | {_readers(topic)} |" for topic in ALL_TOPICS),
    ]
    return "\n".join(lines) + "\n"


def _readers(topic: TopicSpec) -> str:
    groups = [f"{role.service} (`{role.group_id}`)" for role in subscribers_of(topic)]
    return ", ".join(groups) or f"no Tributary service; {_cell(topic.description)}"


def render_topology_block() -> str:
    """What goes between the markers: a note saying where it comes from, and the table.

    Blank lines around the table keep Markdown renderers from reading the
    marker comments as part of it.
    """
    return f"{_NOTE}\n\n{render_service_table()}\n"


def render_service_table() -> str:
    """The Markdown table, one row per service (hosted ones included), in declaration order."""
    header = ("Service", "Consumes (group)", "Does", "Emits")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
        *(_row(role) for role in internal_roles()),
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

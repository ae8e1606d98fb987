"""Loop detection, pure: is the agent repeating itself?

A tool call is reduced to a fingerprint of its name and canonicalised
arguments (key order and whitespace do not matter). The history of a step's
fingerprints shows a loop when one call repeats ``repeat_limit`` times, or
when the last calls form a short cycle repeated back to back (A-B-A-B,
A-B-C-A-B-C).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Literal

LoopKind = Literal["repeat", "cycle"]
_CYCLE_PERIODS = (2, 3)


def canonical_arguments(arguments: str) -> str:
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return " ".join(arguments.split())
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{name}\0{canonical_arguments(arguments)}".encode())
    return f"{name}:{digest.hexdigest()[:16]}"


def detect_loop(history: Sequence[str], *, repeat_limit: int) -> LoopKind | None:
    if not history:
        return None
    for period in _CYCLE_PERIODS:
        tail = history[-period:]
        if (
            len(history) >= 2 * period
            and list(history[-2 * period : -period]) == list(tail)
            and len(set(tail)) == period
        ):
            return "cycle"
    if history.count(history[-1]) >= repeat_limit:
        return "repeat"
    return None


def loop_warning(kind: LoopKind, tool: str) -> str:
    if kind == "repeat":
        what = f"you have called {tool} with the same arguments several times"
    else:
        what = "your tool calls are going round in a cycle"
    return (
        f"Loop detected: {what}, and the results will not change. Do not repeat it: "
        "change your approach, or answer now with what you have."
    )

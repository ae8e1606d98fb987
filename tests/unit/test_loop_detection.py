from __future__ import annotations

import pytest

from tributary_agent_runner.loop_detection import (
    canonical_arguments,
    detect_loop,
    fingerprint,
)


def test_canonical_arguments_ignore_key_order_and_whitespace() -> None:
    assert canonical_arguments('{"b": 1, "a": [1, 2]}') == canonical_arguments('{"a":[1,2],"b":1}')
    assert canonical_arguments("not   json") == "not json"


def test_fingerprints_separate_tools_and_arguments() -> None:
    assert fingerprint("f", '{"u": 1}') == fingerprint("f", '{ "u":1 }')
    assert fingerprint("f", '{"u": 1}') != fingerprint("g", '{"u": 1}')
    assert fingerprint("f", '{"u": 1}') != fingerprint("f", '{"u": 2}')


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], None),
        (["a"], None),
        (["a", "a"], None),
        (["a", "a", "a"], "repeat"),
        (["a", "b", "a", "c", "a"], "repeat"),
        (["a", "b", "a", "b"], "cycle"),
        (["a", "b", "c", "a", "b", "c"], "cycle"),
        (["a", "b", "c", "d"], None),
        (["a", "b", "b", "a"], None),
    ],
)
def test_loops_are_repeats_or_back_to_back_cycles(history: list[str], expected: str | None) -> None:
    assert detect_loop(history, repeat_limit=3) == expected


def test_the_repeat_limit_is_configurable() -> None:
    assert detect_loop(["a"] * 4, repeat_limit=5) is None
    assert detect_loop(["a"] * 5, repeat_limit=5) == "repeat"

from __future__ import annotations

import pytest

from tributary_agent_runner.tools.calculator import calculator_tool, evaluate, format_number
from tributary_agent_runner.tools.registry import ToolArgumentsInvalid, ToolError


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("7 // 2", 3),
        ("-2 ** 2", -4),
        ("sqrt(16) + pi", 7.141592653589793),
    ],
)
def test_arithmetic_is_exact(expression: str, expected: float) -> None:
    assert evaluate(expression) == pytest.approx(expected)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "2 ** 100000",
        "1 / 0",
        "x + 1",
        "[1, 2]",
    ],
)
def test_anything_but_bounded_arithmetic_is_refused(expression: str) -> None:
    with pytest.raises(ToolError):
        evaluate(expression)


def test_results_read_naturally() -> None:
    assert format_number(14.0) == "14"
    assert format_number(0.1 + 0.2) == "0.3"


async def test_the_tool_validates_arguments_before_running() -> None:
    assert await calculator_tool.invoke('{"expression": "6 * 7"}') == "6 * 7 = 42"
    with pytest.raises(ToolArgumentsInvalid, match="expression"):
        await calculator_tool.invoke('{"expr": "6 * 7"}')
    with pytest.raises(ToolArgumentsInvalid):
        await calculator_tool.invoke('{"expression": ')


def test_the_schema_offered_to_the_model_comes_from_the_arguments_model() -> None:
    schema = calculator_tool.openai_schema()
    assert schema["function"]["name"] == "calculator"
    assert schema["function"]["parameters"]["required"] == ["expression"]

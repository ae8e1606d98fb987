from __future__ import annotations

import re

import pytest

from tributary_agent_runner.tools.calculator import (
    MAX_EXPRESSION_CHARS,
    calculator_tool,
    evaluate,
    format_number,
)
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


# Each of these would hold the event loop for seconds to hours if computed (Python
# integers have no size limit), or hides a refusal in an unclear error. Each
# must be refused before the work, naming the limit it hit.
@pytest.mark.parametrize(
    ("expression", "limit"),
    [
        ("round(1, -10**7)", "round() takes at most 300 digits"),
        ("round(2.5, 10**9)", "round() takes at most 300 digits"),
        ("round(2.5, 1.5)", "round() takes a whole number of digits"),
        ("10**10**10", "the exponent 1e+10 is beyond the limit of 10000"),
        ("9**9**9", "the exponent 3.8742e+08 is beyond the limit"),
        ("2**9999", "the result is too large"),
        ("(10**300)**2", "the result is too large"),
        ("0.5**-5000", "the result is too large"),
        ("9**300 * 9**300 * 9**300", "the result is too large"),
        ("*".join(["999999"] * 60), "the result is too large"),
        ("exp(1000)", "the result is too large"),
        ("1" * 400, "a number in the expression is too large"),
        ("1e999", "a number in the expression is too large"),
        ("-" * 200 + "1", "nested more than 100 operations deep"),
        ("+".join(["1"] * 150), "nested more than 100 operations deep"),
        ("(" * 240 + "1" + ")" * 240, "not an arithmetic expression"),
        ("(" * 150 + "-" * 150 + "1" + ")" * 150, "nested more than 100 operations deep"),
        ("1+" * 300 + "1", f"longer than {MAX_EXPRESSION_CHARS} characters"),
        ("(-8) ** (1/3)", "not a real number"),
        ("min()", "cannot evaluate"),
        ("sqrt(1, 2)", "cannot evaluate"),
    ],
)
def test_hostile_expressions_are_refused_naming_the_limit(expression: str, limit: str) -> None:
    with pytest.raises(ToolError, match=re.escape(limit)):
        evaluate(expression)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("round(123456, -3)", 123000),
        ("round(2.675, 2)", 2.67),
        ("2**996", 2**996),
        ("1.0001**10000", 2.71814592682),
        ("+".join(["1"] * 99), 99),
        ("(10**300) / 3", 10**300 / 3),
        ("2**-2000", 0.0),
    ],
)
def test_the_limits_leave_ordinary_arithmetic_alone(expression: str, expected: float) -> None:
    assert evaluate(expression) == pytest.approx(expected)


async def test_the_model_is_told_which_limit_its_expression_hit() -> None:
    with pytest.raises(ToolError, match=re.escape("round() takes at most 300 digits")):
        await calculator_tool.invoke('{"expression": "round(1, -10**7)"}')


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

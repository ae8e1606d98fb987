"""Built-in ``calculator``: exact arithmetic the model should not do in its head.

Expressions are parsed with ``ast`` and evaluated from an allow-list of nodes,
so nothing but arithmetic can run; exponents and results are bounded so a
crafted expression cannot exhaust CPU or memory.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from pydantic import BaseModel, Field

from tributary_agent_runner.tools.registry import Tool, ToolError

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 1e300


class CalculatorArgs(BaseModel):
    expression: str = Field(
        min_length=1,
        max_length=500,
        description="An arithmetic expression, e.g. '(2 + 3) * 4 / sqrt(16)'.",
    )


def evaluate(expression: str) -> float:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from exc
    try:
        value = _eval(tree.body)
    except ZeroDivisionError as exc:
        raise ToolError("division by zero") from exc
    except (OverflowError, ValueError) as exc:
        raise ToolError(f"cannot evaluate: {exc}") from exc
    if isinstance(value, float) and (math.isinf(value) or abs(value) > _MAX_MAGNITUDE):
        raise ToolError("the result is too large")
    return value


def _eval(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ToolError(f"exponent {right:g} is too large")
        result = _BINARY[type(node.op)](left, right)
        if abs(result) > _MAX_MAGNITUDE:
            raise ToolError("the result is too large")
        return result
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args))
    raise ToolError(f"unsupported syntax: {ast.unparse(node)!r}")


def format_number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}" if isinstance(value, float) else str(value)


async def _run(args: CalculatorArgs) -> str:
    return f"{args.expression} = {format_number(evaluate(args.expression))}"


calculator_tool: Tool[CalculatorArgs] = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression exactly. Supports + - * / // % **, "
    "parentheses, pi, e and sqrt, log, log10, exp, sin, cos, tan, abs, round, min, max.",
    args_model=CalculatorArgs,
    run=_run,
    timeout_s=2.0,
    read_only=True,
)

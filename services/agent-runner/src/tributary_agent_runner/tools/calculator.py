"""Built-in ``calculator``: exact arithmetic the model should not do in its head.

Expressions are parsed with ``ast`` and evaluated from an allow-list of nodes,
so nothing but arithmetic can run. The expression may come from a hostile web
page the model read, and it is evaluated on the event loop, so every step is
bounded *before* it is computed: Python integers have no size limit, and
``10 ** 10 ** 10`` or ``round(1, -10 ** 7)`` would otherwise hold the loop for
minutes. With the limits below every expression finishes in well under a
millisecond; a limit that is hit is a :class:`ToolError` naming it.

- the expression: at most :data:`MAX_EXPRESSION_CHARS` characters, nested at
  most :data:`MAX_DEPTH` operations deep;
- every number, intermediate and result: at most :data:`MAX_MAGNITUDE` in
  magnitude (about 1,000 bits, so no product or sum is ever costly);
- ``**``: an exponent of at most :data:`MAX_EXPONENT` in magnitude, and the
  size of the power is estimated from logarithms before it is computed;
- ``round(x, n)``: ``|n|`` at most :data:`MAX_ROUND_DIGITS` (``round`` builds
  ``10 ** |n|``).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from pydantic import BaseModel, Field

from tributary_agent_runner.tools.registry import Tool, ToolError

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_EXPRESSION_CHARS",
    "MAX_MAGNITUDE",
    "MAX_ROUND_DIGITS",
    "CalculatorArgs",
    "calculator_tool",
    "evaluate",
    "format_number",
]

Number = int | float

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 100
MAX_MAGNITUDE = 1e300
MAX_EXPONENT = 10_000
MAX_ROUND_DIGITS = 300
# Decimal digits of MAX_MAGNITUDE: the bound a power's estimated size is held to.
_MAX_DIGITS = math.log10(MAX_MAGNITUDE)

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _round(value: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(value)
    if not isinstance(ndigits, int):
        raise ToolError("round() takes a whole number of digits")
    if abs(ndigits) > MAX_ROUND_DIGITS:
        raise ToolError(
            f"round() takes at most {MAX_ROUND_DIGITS} digits either side of the point "
            f"(got {ndigits})"
        )
    return round(value, ndigits)


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
}
_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e}

_TOO_LARGE = f"the result is too large (the limit is {MAX_MAGNITUDE:g} in magnitude)"


class CalculatorArgs(BaseModel):
    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_CHARS,
        description="An arithmetic expression, e.g. '(2 + 3) * 4 / sqrt(16)'.",
    )


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression; any refusal or limit is a ToolError saying which."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from exc
    if _depth(tree.body) > MAX_DEPTH:
        raise ToolError(f"the expression is nested more than {MAX_DEPTH} operations deep")
    try:
        return _eval(tree.body)
    except ZeroDivisionError as exc:
        raise ToolError("division by zero") from exc
    except OverflowError as exc:
        raise ToolError(_TOO_LARGE) from exc
    except (ValueError, TypeError) as exc:
        raise ToolError(f"cannot evaluate: {exc}") from exc


def _depth(root: ast.expr) -> int:
    """How deeply operations nest (walked without recursion, so depth itself is safe)."""
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _bounded(value: object) -> Number:
    """Hold every operand and result to the magnitude limit, and to real numbers."""
    if isinstance(value, complex):
        raise ToolError("the result is not a real number")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ToolError("the result is not a number")
    if math.isnan(value):
        raise ToolError("the result is not a number")
    if abs(value) > MAX_MAGNITUDE:  # also catches inf
        raise ToolError(_TOO_LARGE)
    return value


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"the exponent {exponent:g} is beyond the limit of {MAX_EXPONENT}")
    # Estimate the size from logarithms before computing: the bounds above allow
    # (1e300) ** 10000, a number of three million digits.
    if base != 0 and exponent != 0:
        digits = exponent * math.log10(abs(base))
        if digits > _MAX_DIGITS:
            raise ToolError(_TOO_LARGE)
    return _bounded(base**exponent)


def _eval(node: ast.expr) -> Number:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        if abs(node.value) > MAX_MAGNITUDE:  # also catches 1e999, which parses as inf
            raise ToolError(
                f"a number in the expression is too large (the limit is {MAX_MAGNITUDE:g})"
            )
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power(_eval(node.left), _eval(node.right))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_eval(node.operand)))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_eval(arg) for arg in node.args]
        return _bounded(_FUNCTIONS[node.func.id](*args))
    raise ToolError(f"unsupported syntax: {ast.unparse(node)!r}")


def format_number(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}" if isinstance(value, float) else str(value)


async def _run(args: CalculatorArgs) -> str:
    return f"{args.expression} = {format_number(evaluate(args.expression))}"


calculator_tool: Tool[CalculatorArgs] = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression exactly. Supports + - * / // % **, "
    "parentheses, pi, e and sqrt, log, log10, exp, sin, cos, tan, abs, round, min, max. "
    f"Numbers and results are limited to {MAX_MAGNITUDE:g} in magnitude.",
    args_model=CalculatorArgs,
    run=_run,
    timeout_s=2.0,
    read_only=True,
)

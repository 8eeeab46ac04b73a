"""An exact calculator tool: integer and rational arithmetic parsed with ``ast``, never ``eval``.

Grammar: numbers (integers, decimals such as ``0.1`` read exactly as 1/10), ``+ - * / // % **``,
parentheses, unary ``+``/``-``. ``/`` gives an exact fraction. Sizes are bounded so that a call is
cheap: the expression is at most ``MAX_EXPRESSION_CHARS`` long, every intermediate numerator and
denominator at most ``MAX_BITS`` bits, and ``a ** b`` needs an integer ``b`` with
``log2(a) * |b| <= MAX_BITS`` (checked before computing). ``×``, ``÷`` and ``−`` are read as
``*``, ``/`` and ``-``.

The answer is an integer (``"42"``), a terminating decimal (``"2.5"``), or a fraction with a
12-significant-digit approximation (``"7/3 ≈ 2.33333333333"``).
"""

from __future__ import annotations

import ast
import math
import operator
import threading
from fractions import Fraction

from pte_rl.tools.common import ToolInputError

MAX_EXPRESSION_CHARS = 2000
MAX_BITS = 100_000

# CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state: two threads
# inside ast.parse (the rollout runs tool calls in a thread pool, and a garbage collection that runs
# a Python finaliser can switch threads mid-parse) raise "SystemError: AST constructor recursion
# depth mismatch" on a well-formed expression. Parses are serialised; they take microseconds.
_PARSE_LOCK = threading.Lock()

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_SYMBOLS = {
    ast.BitXor: "^ (use ** for powers)",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
}


def evaluate(expression: str) -> Fraction:
    """The exact value of an arithmetic expression (raises :class:`ToolInputError` when it is not one).

    >>> evaluate("(1/3 + 1/6) * 4")
    Fraction(2, 1)
    >>> evaluate("2 ** -2 + 0.25")
    Fraction(1, 2)
    """
    if not isinstance(expression, str):
        raise ToolInputError(f"expression must be text, got {type(expression).__name__}")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolInputError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    text = expression.replace("×", "*").replace("÷", "/").replace("−", "-").strip()
    try:
        with _PARSE_LOCK:
            tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ToolInputError(f"cannot parse {expression!r}: {getattr(exc, 'msg', exc)}") from None
    try:
        return _eval(tree.body)
    except RecursionError:
        raise ToolInputError("expression is nested too deeply") from None


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolInputError(f"only numbers are allowed, got {node.value!r}")
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ToolInputError(f"{node.value!r} is not a finite number")
        return _checked(Fraction(repr(node.value)) if isinstance(node.value, float) else Fraction(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        if type(node.op) in _SYMBOLS:
            raise ToolInputError(f"operator {_SYMBOLS[type(node.op)]} is not supported")
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        if isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod) and right == 0:
            raise ToolInputError("division by zero")
        return _checked(_BINARY[type(node.op)](left, right))
    raise ToolInputError(
        f"unsupported syntax: {ast.unparse(node)[:80]!r} (only numbers and + - * / // % ** ( ))"
    )


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise ToolInputError(f"exponent {exponent} is not an integer; exact roots are not supported")
    if base == 0 and exponent < 0:
        raise ToolInputError("division by zero (0 to a negative power)")
    if base != 0:  # log2 of the result's larger part; the exact check follows the computation
        size = max(math.log2(abs(base.numerator)), math.log2(base.denominator))
        if size * abs(exponent.numerator) > MAX_BITS:
            raise ToolInputError(f"the result would exceed {MAX_BITS} bits")
    return _checked(base**exponent.numerator)


def _checked(value: Fraction) -> Fraction:
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
        raise ToolInputError(f"an intermediate result exceeds {MAX_BITS} bits")
    return value


def format_value(value: Fraction) -> str:
    """``"42"``, ``"-2.5"`` (terminating decimals are exact), or ``"7/3 ≈ 2.33333333333"``."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    if denominator == 1:  # terminating: scale to an integer number of 10^-places
        places = max(twos, fives)
        scaled = abs(value.numerator) * 10**places // value.denominator
        digits = str(scaled).rjust(places + 1, "0")
        return ("-" if value < 0 else "") + f"{digits[:-places]}.{digits[-places:]}"
    return f"{value.numerator}/{value.denominator} ≈ {float(value):.12g}"


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return the result.

    Supports integers, decimals, + - * / // % ** and parentheses; division is exact (fractions).

    Args:
        expression: The arithmetic expression, e.g. "(17 * 23 - 5) / 4".
    """
    return format_value(evaluate(expression))

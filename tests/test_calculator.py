"""The exact calculator: values worked out by hand, bounded sizes, no eval."""

from __future__ import annotations

from fractions import Fraction

import pytest

from pte_rl.tools import ToolInputError, Toolset, calculator, evaluate, execute_calls, parse_tool_calls
from pte_rl.tools.calculator import MAX_BITS, format_value


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("(17 * 23 - 5) / 4", "96.5"),  # 386 / 4 = 193 / 2
        ("7/3", "7/3 ≈ 2.33333333333"),
        ("2 ** -2 + 0.25", "0.5"),
        ("0.1 + 0.2", "0.3"),  # decimals are exact: 1/10 + 2/10
        ("-3 // 2", "-2"),  # floor division, as in Python
        ("-7 % 3", "2"),
        ("10 ** 30 + 1", "1000000000000000000000000000001"),
        ("--5", "5"),
        ("+(2)", "2"),
        ("1 / 3 * 3", "1"),
        ("-1/20", "-0.05"),
        ("6 × 7 − 2 ÷ 4", "41.5"),
        ("1e3 / 8", "125"),
        ("(2/3) ** 3", "8/27 ≈ 0.296296296296"),
    ],
)
def test_values(expression, expected):
    assert calculator(expression) == expected


def test_evaluate_returns_exact_fractions():
    assert evaluate("(1/3 + 1/6) * 4") == Fraction(2)
    assert evaluate("123456789 * 987654321") == 121932631112635269
    assert format_value(Fraction(-25, 10)) == "-2.5" and format_value(Fraction(1, 1024)) == "0.0009765625"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1/0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("2 ** (1/2)", "not an integer"),
        ("9 ** 9 ** 9", f"exceed {MAX_BITS} bits"),  # refused before computing
        ("__import__('os').system('true')", "unsupported syntax"),
        ("x + 1", "unsupported syntax"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("2 ^ 3", "use \\*\\* for powers"),
        ("1e400", "not a finite number"),
        ("1 +", "cannot parse"),
        ("(" * 3000 + "1" + ")" * 3000, "longer than"),
        ("-" * 1900 + "1", "."),  # deep but short: an error or a value, never a crash
    ],
)
def test_bad_expressions_raise_tool_input_errors(expression, message):
    if expression.startswith("-" * 1900):
        try:
            assert evaluate(expression) == 1  # 1900 minus signs: an even count
        except ToolInputError:
            pass
        return
    with pytest.raises(ToolInputError, match=message):
        evaluate(expression)


def test_intermediate_results_are_bounded():
    big = f"(2 ** {MAX_BITS - 1})"
    assert evaluate(big) == 2 ** (MAX_BITS - 1)
    with pytest.raises(ToolInputError, match="exceeds"):
        evaluate(f"{big} * {big}")


def test_calculator_errors_reach_the_model_as_messages():
    tools = Toolset([calculator])
    parsed = parse_tool_calls(
        '<tool_call>{"name": "calculator", "arguments": {"expression": "1/0"}}</tool_call>', tools
    )
    (outcome,) = execute_calls(parsed, tools, timeout_s=5)
    assert outcome.content == "Error: division by zero" and outcome.error == "exception"
    assert [e.kind for e in outcome.events] == ["tool_error"]


def test_parallel_calls_never_hit_the_ast_recursion_race():
    """Threads at different stack depths, with garbage collections that run Python finalisers mid-parse:
    without the parse lock CPython 3.11 raises "AST constructor recursion depth mismatch" here."""
    import gc
    import sys
    import threading

    class Cyclic:
        def __del__(self):
            sum(range(50))

    def at_depth(k, fn):
        return fn() if k == 0 else at_depth(k - 1, fn)

    errors: list = []

    def work(depth):
        def once():
            a, b = Cyclic(), Cyclic()
            a.other, b.other = b, a  # cyclic garbage: only the collector frees it, running __del__
            return calculator("(1+2)*(3+4)-(5*6)+(7-8)*(9+10)")

        for _ in range(1500):
            try:
                out = at_depth(depth, once)
            except Exception as exc:  # noqa: BLE001 - the race raises SystemError; any error fails the test
                out = repr(exc)
            if out != "-28":
                errors.append(out)
                return

    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50, 1, 1)
    try:
        threads = [threading.Thread(target=work, args=(depth,)) for depth in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

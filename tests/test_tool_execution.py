"""execute_calls: concurrency, per-call timeouts, and failures turned into tool messages + events."""

from __future__ import annotations

import json
import threading

from pte_rl.tools import ToolInputError, Toolset, ToolText, execute_calls, parse_tool_calls

_BARRIER = threading.Barrier(2)
_RELEASE = threading.Event()


def meet(tag: str, patience: float) -> str:
    """Wait until a second call arrives (only concurrent calls can both pass).

    Args:
        tag: A label.
        patience: Seconds to wait for the other call.
    """
    _BARRIER.wait(timeout=patience)
    return f"met {tag}"


def hang(seconds: float) -> str:
    """Block (until the test releases it).

    Args:
        seconds: Upper bound on the wait.
    """
    _RELEASE.wait(seconds)
    return "released"


def fail(kind: str) -> str:
    """Raise an exception.

    Args:
        kind: Which one: "input" or "crash".
    """
    if kind == "input":
        raise ToolInputError("no page called 'x'")
    raise RuntimeError("boom")


def echo(text: str) -> str:
    """Return the text (an empty string gives an empty output).

    Args:
        text: What to return.
    """
    return text


def flagged(kind: str) -> str:
    """Return a ToolText carrying an error kind and a truncation flag.

    Args:
        kind: The error kind.
    """
    return ToolText(
        "partial output\n[... output truncated: 10 bytes omitted ...]", error=kind, truncated=True
    )


def number(x: int) -> int:
    """Return a non-string value.

    Args:
        x: A number.
    """
    return x * 2


TOOLS = Toolset([meet, hang, fail, echo, flagged, number])


def calls(*items: tuple[str, dict]) -> str:
    return "".join(f"<tool_call>{json.dumps({'name': n, 'arguments': a})}</tool_call>" for n, a in items)


def test_calls_of_a_turn_run_concurrently():
    _BARRIER.reset()
    parsed = parse_tool_calls(
        calls(("meet", {"tag": "a", "patience": 20}), ("meet", {"tag": "b", "patience": 20})), TOOLS, turn=2
    )
    outcomes = execute_calls(parsed, TOOLS, timeout_s=20, max_workers=2)
    assert [o.content for o in outcomes] == ["met a", "met b"]
    assert [o.error for o in outcomes] == [None, None] and all(o.events == [] for o in outcomes)


def test_one_worker_runs_calls_one_at_a_time():
    _BARRIER.reset()
    parsed = parse_tool_calls(
        calls(("meet", {"tag": "a", "patience": 0.5}), ("meet", {"tag": "b", "patience": 0.5})), TOOLS
    )
    outcomes = execute_calls(parsed, TOOLS, timeout_s=20, max_workers=1)
    # alone at the barrier, the first call times out inside the tool (BrokenBarrierError)
    assert outcomes[0].error == "exception" and "BrokenBarrierError" in outcomes[0].content


def test_a_hanging_call_times_out_without_holding_the_others():
    _RELEASE.clear()
    parsed = parse_tool_calls(calls(("hang", {"seconds": 30}), ("echo", {"text": "fine"})), TOOLS, turn=1)
    try:
        outcomes = execute_calls(parsed, TOOLS, timeout_s=0.5, max_workers=1)
    finally:
        _RELEASE.set()  # let the abandoned thread finish
    hung, fine = outcomes
    assert hung.error == "timeout" and "did not finish within 0.5 s" in hung.content
    assert [(e.kind, e.detail, e.turn, e.tool) for e in hung.events] == [("tool_error", "timeout", 1, "hang")]
    assert fine.content == "fine" and fine.error is None


def test_exceptions_become_messages_and_events():
    parsed = parse_tool_calls(calls(("fail", {"kind": "input"}), ("fail", {"kind": "crash"})), TOOLS)
    user_error, crash = execute_calls(parsed, TOOLS, timeout_s=5)
    assert user_error.content == "Error: no page called 'x'" and user_error.error == "exception"
    assert crash.content == "Error: RuntimeError: boom"
    assert [e.kind for e in crash.events] == ["tool_error"] and "RuntimeError: boom" in crash.events[0].detail


def test_empty_output_truncation_and_tool_text_errors():
    parsed = parse_tool_calls(
        calls(
            ("echo", {"text": "  \n"}),
            ("flagged", {"kind": "memory"}),
            ("echo", {"text": "x" * 100}),
            ("number", {"x": 21}),
        ),
        TOOLS,
    )
    empty, flag, long, num = execute_calls(parsed, TOOLS, timeout_s=5, max_output_chars=40)
    assert empty.content == "(the tool returned no output)" and [e.kind for e in empty.events] == [
        "empty_output"
    ]
    assert empty.error is None
    assert flag.error == "memory" and flag.truncated
    assert [e.kind for e in flag.events] == ["tool_error", "truncated_output"] and flag.events[
        0
    ].detail == "memory"
    # 40 characters kept: the first 20 and the last 20, 60 omitted, marker between
    assert long.content == "x" * 20 + "\n[... output truncated: 60 characters omitted ...]\n" + "x" * 20
    assert long.truncated and [e.kind for e in long.events] == ["truncated_output"]
    assert num.content == "42"


def test_parse_failures_come_back_in_text_order_without_running():
    text = (
        calls(("echo", {"text": "one"}), ("nope", {}), ("echo", {"text": 3})) + '<tool_call>{"name": "echo"'
    )
    parsed = parse_tool_calls(text, TOOLS, turn=4)
    outcomes = execute_calls(parsed, TOOLS, timeout_s=5)
    assert [o.error for o in outcomes] == [None, "unknown_tool", "bad_arguments", "bad_json"]
    assert [o.call_id for o in outcomes] == ["call_4_0", "call_4_1", "call_4_2", "call_4_3"]
    assert all(o.events == [] for o in outcomes[1:])  # their events are in parsed.events already
    assert [e.kind for e in parsed.events] == ["unknown_tool", "bad_arguments", "bad_json"]
    assert outcomes[1].message() == {
        "role": "tool",
        "tool_call_id": "call_4_1",
        "name": "nope",
        "content": outcomes[1].content,
    }
    record = outcomes[0].to_tool_call(response_tokens=7)
    assert (record.name, record.arguments, record.output, record.response_tokens, record.call_id) == (
        "echo",
        {"text": "one"},
        "one",
        7,
        "call_4_0",
    )


def test_soft_failures_can_be_left_out():
    tools = Toolset([echo, _code_runner()])
    parsed = parse_tool_calls("```python\nprint(1)\n```", tools)
    assert [o.error for o in execute_calls(parsed, tools)] == ["code_block"]
    assert execute_calls(parsed, tools, include_soft_errors=False) == []


def _code_runner():
    def run(code: str) -> str:
        """Run code.

        Args:
            code: The source.
        """
        return code

    return run

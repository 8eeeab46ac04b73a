"""Run one turn's tool calls concurrently, turning every failure into a tool message and an event.

:func:`execute_calls` takes the :class:`~pte_rl.tools.parsing.ParseResult` of an assistant message and
returns one :class:`ToolOutcome` per call attempt, in text order: valid calls run in worker threads
(at most ``max_workers`` at a time, each with its own ``timeout_s``); failed parses become outcomes
carrying their error message without running anything. Nothing raises out of it:

==========================  ================================  ========================================
what happened               ``outcome.error``                 event (``kind``, ``detail``)
==========================  ================================  ========================================
tool raised                 ``exception``                     ``tool_error``, ``exception: <repr>``
tool ran past ``timeout_s`` ``timeout``                       ``tool_error``, ``timeout``
tool returned ToolText      its ``error`` (timeout, memory..)  ``tool_error``, that kind
  with ``error`` set
tool returned nothing       None                              ``empty_output``
output cut to a budget      None (or the tool's error)        ``truncated_output``
the parse failed            the parse error kind              (already in ``ParseResult.events``)
==========================  ================================  ========================================

A tool that ignores its timeout keeps running in an abandoned daemon thread (Python threads cannot be
killed); the sandboxed ``python`` tool kills its own process, so it never leaks.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pte_rl.pricing.trajectory import Event, ToolCall
from pte_rl.tools.common import ToolInputError, cut_text
from pte_rl.tools.parsing import ParsedCall, ParseError, ParseResult
from pte_rl.tools.schema import Toolset, as_toolset

EMPTY_OUTPUT_TEXT = "(the tool returned no output)"


@dataclass(slots=True)
class ToolOutcome:
    """What one call attempt produced: the tool message text, its error kind, its events."""

    call_id: str
    name: str | None
    arguments: Any
    content: str
    error: str | None = None
    duration_s: float = 0.0
    truncated: bool = False
    events: list[Event] = field(default_factory=list)

    def message(self) -> dict:
        """The OpenAI-style tool message for the chat."""
        return {
            "role": "tool",
            "tool_call_id": self.call_id,
            "name": self.name or "",
            "content": self.content,
        }

    def to_tool_call(self, response_tokens: int = 0) -> ToolCall:
        """The :class:`pte_rl.pricing.trajectory.ToolCall` record, once the response's token count is known."""
        return ToolCall(
            name=self.name or "",
            arguments=self.arguments,
            response_tokens=response_tokens,
            error=self.error,
            output=self.content,
            duration_s=self.duration_s,
            call_id=self.call_id,
        )


def execute_calls(
    parsed: ParseResult,
    tools: Toolset | Iterable[Callable] | Mapping[str, Callable],
    *,
    timeout_s: float = 60.0,
    max_workers: int = 8,
    max_output_chars: int | None = None,
    include_soft_errors: bool = True,
) -> list[ToolOutcome]:
    """Run the valid calls of ``parsed`` concurrently; one outcome per attempt, in text order.

    Args:
        parsed: the parse of one assistant message.
        tools: the tools the model was given (the same set it was parsed against).
        timeout_s: per-call wall-clock limit, counted from the call's start.
        max_workers: calls running at once.
        max_output_chars: cut each response to this many characters (head and tail kept, marker in
            between); None keeps what the tool returned (tools apply their own budgets).
        include_soft_errors: also return outcomes for soft failures (code_block, plain_text_call).
    """
    if timeout_s <= 0 or max_workers < 1:
        raise ValueError(
            f"execute_calls: need timeout_s > 0 and max_workers >= 1, got {timeout_s}, {max_workers}"
        )
    toolset = as_toolset(tools)
    attempts = [
        a for a in parsed.attempts if include_soft_errors or not (isinstance(a, ParseError) and a.soft)
    ]
    calls = [a for a in attempts if isinstance(a, ParsedCall)]
    results = _run_concurrently(calls, toolset, timeout_s, max_workers)
    outcomes: list[ToolOutcome] = []
    for attempt in attempts:
        if isinstance(attempt, ParseError):
            outcomes.append(ToolOutcome(attempt.id, attempt.name, None, attempt.message, attempt.kind))
        else:
            value, exc, duration = results[attempt.id]
            outcomes.append(_outcome(attempt, value, exc, duration, parsed.turn, timeout_s, max_output_chars))
    return outcomes


class _TimedOut(Exception):
    pass


def _run_concurrently(
    calls: list[ParsedCall], toolset: Toolset, timeout_s: float, max_workers: int
) -> dict[str, tuple[Any, BaseException | None, float]]:
    """Run calls in daemon threads; a call past its deadline is abandoned and reported as timed out."""
    done: queue.Queue[tuple[str, Any, BaseException | None, float]] = queue.Queue()
    results: dict[str, tuple[Any, BaseException | None, float]] = {}
    pending = list(reversed(calls))
    running: dict[str, float] = {}  # call id -> start time

    def work(call: ParsedCall, start: float) -> None:
        try:
            value, exc = toolset[call.name](**call.arguments), None
        except BaseException as error:  # noqa: BLE001 - every failure is data
            value, exc = None, error
        done.put((call.id, value, exc, time.monotonic() - start))

    while pending or running:
        while pending and len(running) < max_workers:
            call = pending.pop()
            running[call.id] = start = time.monotonic()
            threading.Thread(target=work, args=(call, start), daemon=True, name=f"tool-{call.id}").start()
        wait = min(start + timeout_s for start in running.values()) - time.monotonic()
        try:
            call_id, value, exc, duration = done.get(timeout=max(wait, 0.0))
            if call_id in running:
                del running[call_id]
                results[call_id] = (value, exc, duration)
        except queue.Empty:
            now = time.monotonic()
            for call_id, start in list(running.items()):
                if now - start >= timeout_s:
                    del running[call_id]
                    results[call_id] = (None, _TimedOut(), now - start)
    return results


def _outcome(
    call: ParsedCall,
    value: Any,
    exc: BaseException | None,
    duration: float,
    turn: int,
    timeout_s: float,
    max_output_chars: int | None,
) -> ToolOutcome:
    outcome = ToolOutcome(call.id, call.name, call.arguments, "", duration_s=duration)
    if isinstance(exc, _TimedOut):
        outcome.content = (
            f"Error: the {call.name} tool did not finish within {timeout_s:g} s and was abandoned."
        )
        outcome.error = "timeout"
        outcome.events.append(Event(turn, "tool_error", "timeout", call.raw[:2000], call.name))
        return outcome
    if exc is not None:
        shown = str(exc) if isinstance(exc, ToolInputError) else f"{type(exc).__name__}: {exc}"
        outcome.content = f"Error: {shown}"
        outcome.error = "exception"
        outcome.events.append(
            Event(turn, "tool_error", f"exception: {shown}"[:500], call.raw[:2000], call.name)
        )
        return outcome
    text = value if isinstance(value, str) else _to_text(value)
    outcome.error = getattr(value, "error", None)
    outcome.truncated = bool(getattr(value, "truncated", False))
    if outcome.error is not None:
        outcome.events.append(Event(turn, "tool_error", outcome.error, text[:2000], call.name))
    if not text.strip():
        outcome.events.append(
            Event(turn, "empty_output", "the tool returned no output", call.raw[:2000], call.name)
        )
        text = EMPTY_OUTPUT_TEXT
    if max_output_chars is not None:
        text, cut = cut_text(str(text), max_output_chars, keep="head_tail")
        outcome.truncated = outcome.truncated or cut
    if outcome.truncated:
        outcome.events.append(Event(turn, "truncated_output", f"{len(text)} characters kept", "", call.name))
    outcome.content = str(text)
    return outcome


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)

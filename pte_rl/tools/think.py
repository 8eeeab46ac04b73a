"""Thoughts are not calls: remove ``<think>...</think>`` from an assistant message before parsing it.

A think tag inside a ``<tool_call>...</tool_call>`` body is the call's data (code that prints
``"<think>"``), not a thought; the scan is linear in the text on any input.
"""

from __future__ import annotations

import bisect

OPEN_TAG, CLOSE_TAG = "<tool_call>", "</tool_call>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def strip_think(text: str) -> str:
    """Remove ``<think>...</think>``; a leading ``...</think>`` (the template opened it) and an
    unterminated ``<think>...`` (the thought ran out of tokens) are removed too. A think tag inside
    a ``<tool_call>...</tool_call>`` body is the call's data (code that prints ``"<think>"``), not a
    thought, and is left alone.

    >>> strip_think("<think>plan</think>Hi"), strip_think('<tool_call>{"code": "<think>"}</tool_call>')
    ('Hi', '<tool_call>{"code": "<think>"}</tool_call>')
    """
    calls = _call_spans(text)
    close = _find_outside(text, THINK_CLOSE, 0, calls)
    opening = _find_outside(text, THINK_OPEN, 0, calls)
    if close != -1 and (opening == -1 or close < opening):
        text = text[close + len(THINK_CLOSE) :]
        calls = _call_spans(text)
    pieces: list[str] = []
    position = 0
    while True:  # a scan, not a regex: linear time on any input
        opening = _find_outside(text, THINK_OPEN, position, calls)
        if opening == -1:
            pieces.append(text[position:])
            break
        pieces.append(text[position:opening])
        close = text.find(THINK_CLOSE, opening + len(THINK_OPEN))
        if close == -1:
            break
        position = close + len(THINK_CLOSE)
    return "".join(pieces)


def _call_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each ``<tool_call>...</tool_call>`` body (an unclosed one runs to the end)."""
    spans, position = [], 0
    while (start := text.find(OPEN_TAG, position)) != -1:
        end = text.find(CLOSE_TAG, start + len(OPEN_TAG))
        end = len(text) if end == -1 else end
        spans.append((start, end))
        position = end + 1
    return spans


def _find_outside(text: str, tag: str, position: int, spans: list[tuple[int, int]]) -> int:
    """The first ``tag`` at or after ``position`` that lies outside every span, else -1."""
    starts = [start for start, _ in spans]
    while (found := text.find(tag, position)) != -1:
        index = bisect.bisect_right(starts, found) - 1  # the last span starting at or before it
        if index < 0 or found >= spans[index][1]:
            return found
        position = spans[index][1]
    return -1

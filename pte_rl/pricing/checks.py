"""Checks of one interchange record's fields, each raising :class:`FormatError` naming file:line:field.

Split from :mod:`pte_rl.pricing.jsonl` so that the reader stays short; everything a reader of any log
shape (:mod:`pte_rl.pricing.formats`) needs to reject bad input with a precise message lives here.
"""

from __future__ import annotations

import math
import os
from typing import Any

from pte_rl.errors import InputError

PathLike = str | os.PathLike[str]
Where = tuple[str | None, int | None]
"""(file, line) of a record, for :class:`FormatError`; either may be unknown."""

MAX_TOKENS = 2**40
"""A token count above this (about 10^12) is taken for garbage, not a log."""


class FormatError(InputError):
    """Bad input: names the file, the line (1-based), the field, and what was expected."""

    def __init__(self, path: PathLike | None, line: int | None, field: str, expected: str):
        self.path, self.line, self.field, self.expected = path, line, field, expected
        where = f"{path}:{line}" if path is not None and line is not None else (str(path) if path else "record")
        super().__init__(f"{where}: field '{field}': {expected}")


def count(value: Any, field: str, where: Where) -> int:
    """A token count: a non-negative integer (an integral float is taken), at most :data:`MAX_TOKENS`.

    >>> count(3.0, "tokens", ("f", 1))
    3
    >>> count(-1, "tokens", ("f", 1))
    Traceback (most recent call last):
    ...
    pte_rl.pricing.checks.FormatError: f:1: field 'tokens': expected a non-negative integer, got -1
    """
    if (
        isinstance(value, bool) or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value)) or value != int(value) or value < 0
    ):
        raise FormatError(*where, field, f"expected a non-negative integer, got {_short(value)}")
    if value > MAX_TOKENS:
        raise FormatError(*where, field, f"expected a token count of at most 2^40, got {_short(value)}")
    return int(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_content(content: Any, field: str, where: Where) -> None:
    """OpenAI content: a string, null, or a list of parts whose ``text`` (where given) is a string."""
    if content is None or isinstance(content, str):
        return
    if isinstance(content, list) and all(
        isinstance(p, dict) and isinstance(p.get("text", ""), str) for p in content
    ):
        return
    raise FormatError(*where, field, "expected a string, null or a list of {type, text} parts")


def check_optional(value: Any, types: type | tuple[type, ...], field: str, expected: str, where: Where) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
        raise FormatError(*where, field, expected)


def check_message(m: dict[str, Any], k: int, where: Where) -> None:
    """The fields of message ``k`` that the reader uses, by type."""
    name = f"messages[{k}]"
    check_content(m.get("content"), f"{name}.content", where)
    check_optional(m.get("tool_call_id"), str, f"{name}.tool_call_id", "expected a string", where)
    check_optional(m.get("error"), str, f"{name}.error", "expected a string or null", where)
    timing = m.get("timing")
    check_optional(timing, dict, f"{name}.timing", "expected an object {prefill_s, decode_s}", where)
    for key in ("prefill_s", "decode_s"):
        seconds = (timing or {}).get(key)
        check_optional(seconds, (int, float), f"{name}.timing.{key}", "expected a number of seconds", where)
        if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
            raise FormatError(*where, f"{name}.timing.{key}", "expected a non-negative number of seconds")
    calls = m.get("tool_calls")
    check_optional(calls, list, f"{name}.tool_calls", "expected a list", where)
    for c_i, call in enumerate(calls or []):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise FormatError(*where, f"{name}.tool_calls[{c_i}].function.name", "expected a string")
        assert isinstance(call, dict)
        check_optional(call.get("id"), str, f"{name}.tool_calls[{c_i}].id", "expected a string", where)
        check_optional(fn.get("arguments"), (str, dict), f"{name}.tool_calls[{c_i}].function.arguments",
                       "expected JSON text or an object", where)


def check_record(record: dict[str, Any], where: Where) -> None:
    """The record's own fields (not its messages), by type."""
    check_optional(record.get("events"), list, "events", "expected a list of events", where)
    check_optional(record.get("answer"), (str, int, float), "answer", "expected a string or null", where)
    correct = record.get("correct")
    if correct is not None and not isinstance(correct, bool | int):
        raise FormatError(*where, "correct", "expected true, false or null")
    check_optional(record.get("metadata"), dict, "metadata", "expected an object", where)
    for e_i, e in enumerate(record.get("events") or []):
        if not isinstance(e, dict) or "kind" not in e or isinstance(e.get("turn"), bool) \
                or not isinstance(e.get("turn"), int):
            raise FormatError(*where, f"events[{e_i}]", "expected an object with 'turn' (an integer) and 'kind'")
        check_optional(e.get("tool"), str, f"events[{e_i}].tool", "expected a string or null", where)

"""What a tool output says, whatever the sandbox wrapped it in: did it print nothing, did it raise.

Harnesses wrap a code tool's output differently: plain text; ``stdout:`` / ``stderr:`` sections
(``[stdout]``, ``STDOUT:`` and ``exit code:`` too); a JSON object with ``stdout``, ``stderr``,
``output``, ``result``, ``error`` (``exception``, ``traceback``, ``exit_code``, ``returncode``,
``status``) keys. :func:`read_output` reads all three into one :class:`ToolOutput`, so that
"printed nothing" is an empty wrapper (``stdout:\\n\\nstderr:``, ``{"stdout": ""}``) and "raised" is
a traceback, an error field or a non-zero exit code in any of them. A JSON object is read as a
wrapper only when its keys are all wrapper keys (a search result ``{"title": ...}`` is content).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(?:Error|Exception): ", re.MULTILINE)
_TEXT_KEYS = ("stdout", "output", "result", "outputs", "text", "content", "data")
_ERROR_KEYS = ("error", "exception", "traceback", "ename", "evalue")
_CODE_KEYS = ("exit_code", "returncode", "return_code", "exitcode")
_WRAPPER_KEYS = frozenset({*_TEXT_KEYS, *_ERROR_KEYS, *_CODE_KEYS, "stderr", "status", "success", "ok"})
_SECTION = re.compile(
    r"^[ \t]*(?:\[(stdout|stderr|output|error|exit[ _]code)\]|(stdout|stderr|output|error|exit[ _]code)[ \t]*:)[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_EMPTY_MARKER = re.compile(
    r"[\[(<]?\s*(?:no output|empty output|no stdout|nothing (?:was )?printed|\(?empty\)?|"
    r"code executed successfully(?: with no output)?)\s*[\])>]?\.?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A tool output, unwrapped: what it printed, its errors, and how it was wrapped."""

    printed: str
    """stdout / output / result text (plain text: all of it)."""
    errors: str
    """stderr, error fields, a traceback (plain text: the text from the traceback on)."""
    wrapper: str
    """``plain``, ``sections`` or ``json``."""
    exit_code: int | None = None
    failed: bool = False
    """An error field, an ``error:`` section or a failed status (stderr alone is not one)."""

    @property
    def empty(self) -> bool:
        """Printed nothing and reported no error."""
        return not self.printed.strip() and not self.errors.strip() and not self.exit_code

    @property
    def raised(self) -> bool:
        """A traceback, an error field or a non-zero exit code (stderr warnings alone are not)."""
        return self.failed or bool(self.exit_code) or bool(TRACEBACK.search(self.printed + "\n" + self.errors))


def _text(value: Any) -> str:
    if value is None or value is False:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "\n".join(filter(None, (_text(v) for v in value)))
    if isinstance(value, dict) and not value:
        return ""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


def _exit_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _from_json(obj: dict[str, Any]) -> ToolOutput:
    printed = "\n".join(filter(None, (_text(obj.get(k)) for k in _TEXT_KEYS)))
    error_fields = "\n".join(filter(None, (_text(obj.get(k)) for k in _ERROR_KEYS)))
    status = str(obj.get("status", "")).lower()
    failed = status in ("error", "failed", "failure") or obj.get("success") is False or obj.get("ok") is False
    code = next((c for c in (_exit_code(obj.get(k)) for k in _CODE_KEYS if k in obj) if c is not None), None)
    if failed and not code:
        error_fields = error_fields or f"status: {obj.get('status', 'failed')}"
    errors = "\n".join(filter(None, (_text(obj.get("stderr")), error_fields)))
    return ToolOutput(printed, errors, "json", code, bool(error_fields))


def _from_sections(text: str, marks: list[re.Match[str]]) -> ToolOutput:
    parts: dict[str, list[str]] = {}
    if text[: marks[0].start()].strip():
        parts.setdefault("stdout", []).append(text[: marks[0].start()])
    for n, mark in enumerate(marks):
        name = (mark.group(1) or mark.group(2)).lower().replace(" ", "_")
        end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
        parts.setdefault("stdout" if name == "output" else name, []).append(text[mark.end() : end])
    code = _exit_code("".join(parts.get("exit_code", [])))
    error = "".join(parts.get("error", []))
    errors = "\n".join(filter(None, ("".join(parts.get("stderr", [])).strip(), error.strip())))
    return ToolOutput("".join(parts.get("stdout", [])), errors, "sections", code, bool(error.strip()))


def read_output(text: str | None) -> ToolOutput:
    """Unwrap a tool output (module docstring).

    >>> read_output("stdout:\\n\\nstderr:\\n").empty
    True
    >>> read_output('{"stdout": "", "stderr": "", "exit_code": 0}').empty
    True
    >>> out = read_output('{"stdout": "", "error": "NameError: name \\'x\\' is not defined"}')
    >>> out.empty, out.raised, out.wrapper
    (False, True, 'json')
    >>> read_output("stdout:\\n42\\nstderr:\\nDeprecationWarning: old\\n").raised
    False
    >>> read_output("Traceback (most recent call last):\\n  ...\\nZeroDivisionError: division by zero").raised
    True
    >>> read_output('{"title": "Paris", "url": "https://x"}').wrapper, read_output("(no output)").empty
    ('plain', True)
    """
    text = text or ""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and obj and set(obj) <= _WRAPPER_KEYS:
            return _from_json(obj)
    marks = list(_SECTION.finditer(text))
    if marks:
        return _from_sections(text, marks)
    if _EMPTY_MARKER.fullmatch(stripped):
        return ToolOutput("", "", "plain")
    match = TRACEBACK.search(text)
    return ToolOutput(text, text[match.start() :] if match else "", "plain")

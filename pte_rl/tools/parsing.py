"""Find the tool calls in an assistant message, and every way a call can go wrong.

Accepted protocols:

* Hermes / Qwen: ``<tool_call>{"name": "python", "arguments": {"code": "..."}}</tool_call>``, several
  per message, whitespace and newlines tolerated, ``arguments`` a JSON object or a JSON-encoded string.
  A ``<tool_call>`` whose body is complete JSON is accepted even without ``</tool_call>`` or with a
  cut-off one (stop strings often swallow the closing tag); a truncated body is ``bad_json``.
* Llama 3.1: the whole message is ``{"name": ..., "parameters": {...}}`` (or several, separated by
  ``;``), or such JSON follows ``<|python_tag|>``.

``<think>...</think>`` is removed first (thoughts are not calls: :mod:`pte_rl.tools.think`). Each
failure becomes a :class:`ParseError` (the text of the tool message the model will see) and a
:class:`pte_rl.pricing.trajectory.Event` whose ``text`` is the matched evidence:

=================  ==============================================================  ======
kind               when                                                            soft
=================  ==============================================================  ======
bad_json           a call whose JSON does not parse (truncated, malformed)          no
unknown_tool       a well-formed call naming a tool the model was not given         no
bad_arguments      arguments that break the tool's JSON schema                      no
code_block         no call, but a fenced ```python block (with a code tool) or a    yes
                   fenced JSON call
plain_text_call    no call, but ``python(code=...)``-like text naming a tool        yes
=================  ==============================================================  ======

*Soft* failures are only looked for when the message has no call at all; the loop may treat such a
message as final (it may be an answer that shows code) or answer it with the error; hard failures
always need a tool message. :func:`parse_tool_calls` never raises on any text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pte_rl.pricing.trajectory import Event
from pte_rl.tools.schema import Toolset, as_toolset
from pte_rl.tools.think import CLOSE_TAG, OPEN_TAG, strip_think

PYTHON_TAG = "<|python_tag|>"
SOFT_KINDS = frozenset({"code_block", "plain_text_call"})
EVIDENCE_CHARS = 2000  # events keep at most this much of the matched text
MAX_SOFT_FAILURES = 5  # code blocks / plain-text calls reported per message

_PY_LANGS = frozenset({"python", "py", "python3", "py3", "ipython", "pycon"})
_LLAMA_END_TAGS = ("<|eom_id|>", "<|eot_id|>")
_LLAMA_START_RE = re.compile(r'^\{\s*"(name|function)"\s*:')


@dataclass(slots=True)
class ParsedCall:
    """A call that parsed and whose arguments fit the tool's schema."""

    name: str
    arguments: dict
    raw: str
    id: str
    position: int = 0


@dataclass(slots=True)
class ParseError:
    """A failed call: ``message`` is the tool message the model sees, ``raw`` the text it came from."""

    kind: str
    raw: str
    message: str
    id: str
    name: str | None = None
    position: int = 0

    @property
    def soft(self) -> bool:
        return self.kind in SOFT_KINDS


@dataclass(slots=True)
class ParseResult:
    """Calls and failures of one assistant message, in the order they appear."""

    calls: list[ParsedCall] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    text: str = ""  # the message with <think> removed
    turn: int = 0

    @property
    def needs_response(self) -> bool:
        """True when tool messages must follow: a valid call or a hard (non-soft) failure."""
        return bool(self.calls) or any(not e.soft for e in self.errors)

    @property
    def attempts(self) -> list[ParsedCall | ParseError]:
        """Calls and failures merged in text order (the order of their tool messages)."""
        return sorted([*self.calls, *self.errors], key=lambda a: a.position)


def parse_tool_calls(
    text: str,
    tools: Toolset | Iterable[Callable] | Mapping[str, Callable],
    *,
    turn: int = 0,
    id_prefix: str = "call",
) -> ParseResult:
    """Parse the tool calls of one assistant message (see the module docstring); never raises.

    Call ids are ``f"{id_prefix}_{turn}_{k}"`` with ``k`` counting calls and failures in text order.
    """
    toolset = as_toolset(tools)
    visible = strip_think(text if isinstance(text, str) else str(text))
    parser = _Parser(toolset, turn, id_prefix)
    found = parser.hermes(visible) or parser.llama(visible)
    if not found:
        parser.soft_failures(visible)
    return ParseResult(parser.calls, parser.errors, parser.events, visible, turn)


class _Parser:
    def __init__(self, toolset: Toolset, turn: int, id_prefix: str) -> None:
        self.toolset, self.turn, self.id_prefix = toolset, turn, id_prefix
        self.calls: list[ParsedCall] = []
        self.errors: list[ParseError] = []
        self.events: list[Event] = []

    def _next_id(self) -> str:
        return f"{self.id_prefix}_{self.turn}_{len(self.calls) + len(self.errors)}"

    def fail(
        self, kind: str, raw: str, message: str, position: int, name: str | None = None, detail: str = ""
    ) -> None:
        self.errors.append(ParseError(kind, raw, message, self._next_id(), name, position))
        self.events.append(Event(self.turn, kind, detail or message, raw[:EVIDENCE_CHARS], name))

    # -- Hermes / Qwen -------------------------------------------------------------------------
    def hermes(self, text: str) -> bool:
        start = text.find(OPEN_TAG)
        if start == -1:
            close = text.find(CLOSE_TAG)
            if close == -1:
                return False
            raw = text[max(0, close - EVIDENCE_CHARS) : close + len(CLOSE_TAG)]
            self.fail(
                "bad_json", raw, _protocol_hint(f"found {CLOSE_TAG} without an opening {OPEN_TAG}"), close
            )
            return True
        close = -2  # the next closing tag at or after the body; searched again only when passed
        while start != -1:
            body_start = start + len(OPEN_TAG)
            if close != -1 and close < body_start:
                close = text.find(CLOSE_TAG, body_start)
            following = text.find(OPEN_TAG, body_start)
            if close != -1 and (following == -1 or close < following):
                body, raw, end, terminated = (
                    text[body_start:close],
                    text[start : close + len(CLOSE_TAG)],
                    close,
                    True,
                )
            else:
                end = following if following != -1 else len(text)
                body, raw, terminated = text[body_start:end], text[start:end], False
                body = _without_partial_close(body)
            self.body(body, raw, start, terminated)
            start = text.find(OPEN_TAG, end)
        return True

    def body(self, body: str, raw: str, position: int, terminated: bool) -> None:
        objects, error = _json_objects(body)
        if error is not None:
            why = error if terminated else f"{error} (and no closing {CLOSE_TAG})"
            self.fail("bad_json", raw, _protocol_hint(f"the tool call is not valid JSON: {why}"), position)
            return
        for obj in objects:
            self.call_object(obj, raw, position)

    # -- Llama 3.1 -----------------------------------------------------------------------------
    def llama(self, text: str) -> bool:
        stripped = text.strip()
        for end_tag in _LLAMA_END_TAGS:
            stripped = stripped.removesuffix(end_tag).rstrip()
        tag = stripped.find(PYTHON_TAG)
        if tag != -1:
            body, position = stripped[tag + len(PYTHON_TAG) :], text.find(PYTHON_TAG)
        elif _LLAMA_START_RE.match(stripped):
            body, position = stripped, max(text.find("{"), 0)
        else:
            return False
        objects, error = _json_objects(body)
        if error is not None:
            self.fail("bad_json", body, _protocol_hint(f"the tool call is not valid JSON: {error}"), position)
            return True
        if tag == -1 and not all(
            isinstance(o, dict) and ("arguments" in o or "parameters" in o) for o in objects
        ):
            return False  # a JSON answer such as {"name": "Paris"}, not a call
        for obj in objects:
            self.call_object(obj, body, position)
        return True

    # -- one call object -----------------------------------------------------------------------
    def call_object(self, obj: Any, raw: str, position: int) -> None:
        if isinstance(obj, dict) and "name" not in obj and isinstance(obj.get("function"), dict):
            obj = obj["function"]  # {"type": "function", "function": {...}}
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            self.fail(
                "bad_json",
                raw,
                _protocol_hint('a tool call must be a JSON object with a string "name"'),
                position,
            )
            return
        name = obj["name"]
        arguments = obj.get("arguments", obj.get("parameters"))
        if arguments is None:
            arguments = {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments, strict=False) if arguments.strip() else {}
            except (ValueError, RecursionError) as exc:
                message = (
                    f'Error: the "arguments" of the {name!r} call are a string that is not valid JSON: {exc}.'
                )
                self.fail("bad_json", raw, message, position, name)
                return
        if name not in self.toolset:
            available = ", ".join(self.toolset.names) or "none"
            self.fail(
                "unknown_tool",
                raw,
                f"Error: unknown tool {name!r}. Available tools: {available}.",
                position,
                name,
            )
            return
        problem = self.toolset.validate(name, arguments)
        if problem is not None:
            message = f"Error: invalid arguments for tool {name!r}: {problem}."
            self.fail("bad_arguments", raw, message, position, name, detail=problem)
            return
        self.calls.append(ParsedCall(name, arguments, raw, self._next_id(), position))

    # -- calls outside the protocol ------------------------------------------------------------
    def soft_failures(self, text: str) -> None:
        code_tool = _code_tool(self.toolset)
        fences = _fences(text)
        for start, end, lang, content in fences:
            if len(self.errors) >= MAX_SOFT_FAILURES:
                break
            if lang in _PY_LANGS and code_tool is not None and content.strip():
                example = json.dumps({"name": code_tool, "arguments": {"code": "print(1 + 1)"}})
                message = (
                    "Error: code in a fenced block is not executed. To run code, call the tool: "
                    f"{OPEN_TAG}{example}{CLOSE_TAG}"
                )
                self.fail("code_block", text[start:end], message, start, code_tool, f"```{lang} block")
            elif lang in ("json", "") and _names_a_tool(content, self.toolset):
                message = _protocol_hint("a tool call inside a code fence is not executed")
                self.fail("code_block", text[start:end], message, start, None, "tool call in a code fence")
        if not self.toolset.names:
            return
        pieces, position = [], 0
        for start, end, _, _ in fences:  # blank the fences out, keeping offsets
            pieces += [text[position:start], " " * (end - start)]
            position = end
        outside = "".join(pieces) + text[position:]
        names = "|".join(re.escape(n) for n in sorted(self.toolset.names, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.])({names})\s*\(\s*(?:[A-Za-z_]\w*\s*=|[\"'])")
        for match in list(pattern.finditer(outside))[: max(0, MAX_SOFT_FAILURES - len(self.errors))]:
            line_end = outside.find("\n", match.end())
            raw = text[match.start() : line_end if line_end != -1 else len(text)]
            name = match.group(1)
            message = _protocol_hint(f"{name}(...) written as text is not executed", name)
            self.fail("plain_text_call", raw, message, match.start(), name, f"{name}(...) as text")


def _fences(text: str) -> list[tuple[int, int, str, str]]:
    """Fenced code blocks as (start, end, language, content), found line by line (linear time).

    A fence opens on a line starting with ```, optionally followed by a language, and closes at the
    next line starting with ``` (or at the end of the text, when the message was cut off).
    """
    fences: list[tuple[int, int, str, str]] = []
    opened: tuple[int, int, str] | None = None  # (start, content start, language)
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        if stripped.startswith("```") and len(line) - len(stripped) <= 3:
            if opened is None:
                words = stripped[3:].split()
                opened = (offset, offset + len(line), words[0].lower() if words else "")
            else:
                fences.append(
                    (opened[0], offset + len(line.rstrip("\r\n")), opened[2], text[opened[1] : offset])
                )
                opened = None
        offset += len(line)
    if opened is not None:
        fences.append((opened[0], len(text), opened[2], text[opened[1] :]))
    return fences


def _without_partial_close(body: str) -> str:
    """Drop a cut-off closing tag (``...}</tool_c``) from the end of an unterminated body."""
    stripped = body.rstrip()
    for length in range(len(CLOSE_TAG) - 1, 0, -1):
        if stripped.endswith(CLOSE_TAG[:length]):
            return stripped[: len(stripped) - length]
    return body


def _json_objects(body: str) -> tuple[list[Any], str | None]:
    """Parse one JSON value (a call or a list of calls) or several separated by whitespace / ``;``."""
    body = body.strip()
    if not body:
        return [], "the body is empty"
    decoder = json.JSONDecoder(strict=False)
    values: list[Any] = []
    position = 0
    try:
        while position < len(body):
            value, position = decoder.raw_decode(body, position)
            values.extend(value if isinstance(value, list) and value else [value])
            while position < len(body) and (body[position].isspace() or body[position] in ";,"):
                position += 1
    except ValueError as exc:
        return [], str(exc)
    except RecursionError:
        return [], "the JSON is nested too deeply"
    return values, None


def _names_a_tool(content: str, toolset: Toolset) -> bool:
    objects, error = _json_objects(content)
    return error is None and any(isinstance(o, dict) and o.get("name") in toolset for o in objects)


def _code_tool(toolset: Toolset) -> str | None:
    """The tool that runs code: one named ``python``, else one whose only required argument is ``code``."""
    if "python" in toolset:
        return "python"
    for name in toolset.names:
        if toolset.schema(name)["function"]["parameters"]["required"] == ["code"]:
            return name
    return None


def _protocol_hint(problem: str, name: str = "tool_name") -> str:
    return (
        f"Error: {problem}. Call tools as {OPEN_TAG}"
        f'{{"name": "{name}", "arguments": {{...}}}}{CLOSE_TAG} with valid JSON.'
    )

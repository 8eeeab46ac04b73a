"""Find the tool calls in an assistant message, and every way a call can go wrong.

Accepted protocols:

* Hermes / Qwen: ``<tool_call>{"name": "python", "arguments": {"code": "..."}}</tool_call>``, several
  per message, whitespace and newlines tolerated, ``arguments`` a JSON object or a JSON-encoded string.
  A ``<tool_call>`` whose body is complete JSON is accepted even without ``</tool_call>`` or with a
  cut-off one (stop strings often swallow the closing tag); a truncated body is ``bad_json``.
* Llama 3.1: the whole message is ``{"name": ..., "parameters": {...}}`` (or several, separated by
  ``;``), or such JSON follows ``<|python_tag|>``.

That is the default. A harness that declares one call syntax (``syntax=``, one of
:data:`pte_rl.tools.call_syntax.SYNTAXES`: ``hermes``, ``llama3_json``, ``fenced_code``, ``pythonic``)
gets a parser that accepts that syntax only: a call written in any other one is a ``wrong_syntax``
failure whose message shows the form this harness expects, and every hint names that form.

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
wrong_syntax       a call in a syntax other than the one declared (only with        no
                   ``syntax=``): a ``<tool_call>`` under a pythonic harness, ...
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
from pte_rl.tools.call_syntax import (
    FENCE_LANGUAGE,
    SYNTAXES,
    block_calls,
    call_lists,
    fences,
    json_objects,
    render_call,
)
from pte_rl.tools.schema import Toolset, as_toolset
from pte_rl.tools.think import CLOSE_TAG, OPEN_TAG, strip_think

PYTHON_TAG = "<|python_tag|>"
SOFT_KINDS = frozenset({"code_block", "plain_text_call"})
EVIDENCE_CHARS = 2000  # events keep at most this much of the matched text
MAX_SOFT_FAILURES = 5  # code blocks / plain-text calls reported per message

_PY_LANGS = frozenset({"python", "py", "python3", "py3", "ipython", "pycon"})
_LLAMA_END_TAGS = ("<|eom_id|>", "<|eot_id|>")
_LLAMA_START_RE = re.compile(r'^\{\s*"(name|function)"\s*:')
_OPEN, _CLOSE = re.escape(OPEN_TAG), re.escape(CLOSE_TAG)
_HERMES_BLOCK_RE = re.compile(f"{_OPEN}.*?(?:{_CLOSE}|(?={_OPEN})|\\Z)|{_CLOSE}", re.DOTALL)
_NAME_RE = re.compile(r'"name"\s*:\s*"([\w.-]{1,200})"')
_FORMS = {"hermes": f"a {OPEN_TAG} block", "llama3_json": "a JSON call object", "pythonic": "a Python list of calls",
          "fenced_code": f"a ```{FENCE_LANGUAGE} block"}


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
    syntax: str | None = None,
) -> ParseResult:
    """Parse the tool calls of one assistant message (see the module docstring); never raises on any text.

    Call ids are ``f"{id_prefix}_{turn}_{k}"`` with ``k`` counting calls and failures in text order.
    ``syntax`` (None: Hermes or Llama 3.1) is the only call syntax accepted; a bad name raises ValueError.
    """
    if syntax is not None and syntax not in SYNTAXES:
        raise ValueError(f"syntax: expected None or one of {SYNTAXES}, got {syntax!r}")
    toolset = as_toolset(tools)
    visible = strip_think(text if isinstance(text, str) else str(text))
    parser = _Parser(toolset, turn, id_prefix, syntax)
    found = parser.strict(visible) if syntax else (parser.hermes(visible) or parser.llama(visible))
    if not found:
        parser.soft_failures(visible)
    if syntax:
        parser.renumber()
    return ParseResult(parser.calls, parser.errors, parser.events, visible, turn)


class _Parser:
    def __init__(self, toolset: Toolset, turn: int, id_prefix: str, syntax: str | None = None) -> None:
        self.toolset, self.turn, self.id_prefix, self.syntax = toolset, turn, id_prefix, syntax
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

    def hint(self, problem: str, name: str = "tool_name") -> str:
        """An error message that ends with how this parser's syntax writes a call."""
        syntax = self.syntax or "hermes"
        valid = " with valid JSON" if syntax in ("hermes", "llama3_json") else ""
        return f"Error: {problem}. Call tools as {render_call(syntax, name)}{valid}."

    def renumber(self) -> None:
        """Ids in text order (the strict parser finds calls syntax by syntax, not left to right)."""
        attempts: list[ParsedCall | ParseError] = [*self.calls, *self.errors]
        for k, attempt in enumerate(sorted(attempts, key=lambda a: a.position)):
            attempt.id = f"{self.id_prefix}_{self.turn}_{k}"

    # -- one declared syntax -------------------------------------------------------------------
    def strict(self, text: str) -> bool:
        """Calls in the declared syntax, then any call in another syntax outside them (``wrong_syntax``)."""
        spans = self.accept(text)
        for other in ("hermes", "fenced_code", "pythonic", "llama3_json"):  # the whole-message form last
            if other != self.syntax:
                spans += self.foreign(other, _blank(text, spans))
        return bool(spans)

    def accept(self, text: str) -> list[tuple[int, int]]:
        if self.syntax == "hermes":
            return [m.span() for m in _HERMES_BLOCK_RE.finditer(text)] if self.hermes(text) else []
        if self.syntax == "llama3_json":
            return [(0, len(text))] if self.llama(text) else []
        found = call_lists(text) if self.syntax == "pythonic" else _tool_code_blocks(text)
        for start, end, calls, problem in found:
            if calls is None:
                self.fail("bad_json", text[start:end], self.hint(f"the call is not valid: {problem}"), start)
            for name, arguments in calls or []:
                self.call_object({"name": name, "arguments": arguments}, text[start:end], start)
        return [(start, end) for start, end, _, _ in found]

    def foreign(self, syntax: str, text: str) -> list[tuple[int, int]]:
        """Calls written in ``syntax`` (not the declared one): each a ``wrong_syntax`` failure."""
        found: list[tuple[int, int, str | None]]
        if syntax == "hermes":
            found = [(*m.span(), _json_name(m.group(0))) for m in _HERMES_BLOCK_RE.finditer(text)]
        elif syntax == "llama3_json":
            candidate = _llama_candidate(text)
            found = [(candidate[1], len(text), _json_name(candidate[0]))] if candidate and _llama_call(*candidate) \
                else []
        else:
            blocks = call_lists(text) if syntax == "pythonic" else _tool_code_blocks(text)
            found = [(start, end, calls[0][0] if calls else None) for start, end, calls, _ in blocks]
        for start, end, name in found:
            shown = name if name is not None and name in self.toolset else "tool_name"
            message = self.hint(f"{_FORMS[syntax]} is not how tools are called here", shown)
            self.fail("wrong_syntax", text[start:end], message, start, name, f"{syntax} call")
        return [(start, end) for start, end, _ in found]

    # -- Hermes / Qwen -------------------------------------------------------------------------
    def hermes(self, text: str) -> bool:
        start = text.find(OPEN_TAG)
        if start == -1:
            close = text.find(CLOSE_TAG)
            if close == -1:
                return False
            raw = text[max(0, close - EVIDENCE_CHARS) : close + len(CLOSE_TAG)]
            self.fail("bad_json", raw, self.hint(f"found {CLOSE_TAG} without an opening {OPEN_TAG}"), close)
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
        objects, error = json_objects(body)
        if error is not None:
            why = error if terminated else f"{error} (and no closing {CLOSE_TAG})"
            self.fail("bad_json", raw, self.hint(f"the tool call is not valid JSON: {why}"), position)
            return
        for obj in objects:
            self.call_object(obj, raw, position)

    # -- Llama 3.1 -----------------------------------------------------------------------------
    def llama(self, text: str) -> bool:
        candidate = _llama_candidate(text)
        if candidate is None or not _llama_call(*candidate):
            return False  # no JSON, or a JSON answer such as {"name": "Paris"}, not a call
        body, position, _ = candidate
        objects, error = json_objects(body)
        if error is not None:
            self.fail("bad_json", body, self.hint(f"the tool call is not valid JSON: {error}"), position)
            return True
        for obj in objects:
            self.call_object(obj, body, position)
        return True

    # -- one call object -----------------------------------------------------------------------
    def call_object(self, obj: Any, raw: str, position: int) -> None:
        if isinstance(obj, dict) and "name" not in obj and isinstance(obj.get("function"), dict):
            obj = obj["function"]  # {"type": "function", "function": {...}}
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            self.fail("bad_json", raw, self.hint('a tool call must be a JSON object with a string "name"'), position)
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
        blocks = fences(text)
        for start, end, lang, content in blocks:
            if len(self.errors) >= MAX_SOFT_FAILURES:
                break
            if lang in _PY_LANGS and code_tool is not None and content.strip():
                example = render_call(self.syntax or "hermes", code_tool, {"code": "print(1 + 1)"})
                message = f"Error: code in a fenced block is not executed. To run code, call the tool: {example}"
                self.fail("code_block", text[start:end], message, start, code_tool, f"```{lang} block")
            elif lang in ("json", "") and _names_a_tool(content, self.toolset):
                message = self.hint("a tool call inside a code fence is not executed")
                self.fail("code_block", text[start:end], message, start, None, "tool call in a code fence")
        if not self.toolset.names:
            return
        pieces, position = [], 0
        for start, end, _, _ in blocks:  # blank the fences out, keeping offsets
            pieces += [text[position:start], " " * (end - start)]
            position = end
        outside = "".join(pieces) + text[position:]
        names = "|".join(re.escape(n) for n in sorted(self.toolset.names, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.])({names})\s*\(\s*(?:[A-Za-z_]\w*\s*=|[\"'])")
        for match in list(pattern.finditer(outside))[: max(0, MAX_SOFT_FAILURES - len(self.errors))]:
            line_end = outside.find("\n", match.end())
            raw = text[match.start() : line_end if line_end != -1 else len(text)]
            name = match.group(1)
            message = self.hint(f"{name}(...) written as text is not executed", name)
            self.fail("plain_text_call", raw, message, match.start(), name, f"{name}(...) as text")


def _without_partial_close(body: str) -> str:
    """Drop a cut-off closing tag (``...}</tool_c``) from the end of an unterminated body."""
    stripped = body.rstrip()
    for length in range(len(CLOSE_TAG) - 1, 0, -1):
        if stripped.endswith(CLOSE_TAG[:length]):
            return stripped[: len(stripped) - length]
    return body


def _llama_candidate(text: str) -> tuple[str, int, bool] | None:
    """(JSON body, position, after <|python_tag|>) when the message has the Llama 3.1 call shape."""
    stripped = text.strip()
    for end_tag in _LLAMA_END_TAGS:
        stripped = stripped.removesuffix(end_tag).rstrip()
    tag = stripped.find(PYTHON_TAG)
    if tag != -1:
        return stripped[tag + len(PYTHON_TAG) :], text.find(PYTHON_TAG), True
    if _LLAMA_START_RE.match(stripped):
        return stripped, max(text.find("{"), 0), False
    return None


def _llama_call(body: str, position: int, tagged: bool) -> bool:
    """A call, not a JSON answer: after the tag, or objects that all carry arguments / parameters
    (a body that is not JSON at all is a broken call)."""
    objects, error = json_objects(body)
    return tagged or error is not None or all(
        isinstance(o, dict) and ("arguments" in o or "parameters" in o) for o in objects)


def _tool_code_blocks(text: str) -> list[tuple[int, int, list | None, str | None]]:
    return [(start, end, *block_calls(content)) for start, end, lang, content in fences(text) if lang == FENCE_LANGUAGE]


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the spans replaced by spaces (offsets kept)."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _json_name(raw: str) -> str | None:
    match = _NAME_RE.search(raw)
    return match.group(1) if match else None


def _names_a_tool(content: str, toolset: Toolset) -> bool:
    objects, error = json_objects(content)
    return error is None and any(isinstance(o, dict) and o.get("name") in toolset for o in objects)


def _code_tool(toolset: Toolset) -> str | None:
    """The tool that runs code: one named ``python``, else one whose only required argument is ``code``."""
    if "python" in toolset:
        return "python"
    for name in toolset.names:
        if toolset.schema(name)["function"]["parameters"]["required"] == ["code"]:
            return name
    return None

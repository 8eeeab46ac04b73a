"""The call syntaxes a harness may declare: how each is written, and how it is found in a message.

==============  =====================================================================================
syntax          a call written in it
==============  =====================================================================================
``hermes``      ``<tool_call>{"name": "search", "arguments": {"query": "tides"}}</tool_call>``
``llama3_json`` ``{"name": "search", "parameters": {"query": "tides"}}`` (the whole message, or after
                ``<|python_tag|>``)
``fenced_code`` a fenced block with the language ``tool_code`` holding Python calls, one a line::

                    ```tool_code
                    search(query="tides")
                    ```
``pythonic``    a Python list of calls: ``[search(query="tides"), visit(doc="d1")]``
==============  =====================================================================================

Python calls (``fenced_code``, ``pythonic``) are read with :mod:`ast`, never evaluated: arguments must
be passed by name and be literals (strings, numbers, booleans, ``None``, lists, dicts). The finders
here return spans and what they read; :mod:`pte_rl.tools.parsing` turns them into calls and errors.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any

SYNTAXES = ("hermes", "llama3_json", "fenced_code", "pythonic")
FENCE_LANGUAGE = "tool_code"
MAX_LISTS = 64  # call lists looked at per message
MAX_LIST_ENDS = 64  # closing brackets tried per list before it counts as malformed

_LIST_START = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")

Call = tuple[str, dict[str, Any]]


def render_call(syntax: str, name: str, arguments: dict[str, Any] | None = None) -> str:
    """One call written in ``syntax``; ``arguments=None`` writes a placeholder for them.

    >>> render_call("pythonic", "search", {"query": "tides", "k": 2})
    '[search(query="tides", k=2)]'
    >>> render_call("llama3_json", "search")
    '{"name": "search", "parameters": {...}}'
    """
    if syntax in ("hermes", "llama3_json"):
        key = "arguments" if syntax == "hermes" else "parameters"
        body = "{...}" if arguments is None else json.dumps(arguments, ensure_ascii=False)
        text = f'{{"name": {json.dumps(name)}, "{key}": {body}}}'
        return f"<tool_call>{text}</tool_call>" if syntax == "hermes" else text
    if syntax not in ("fenced_code", "pythonic"):
        raise ValueError(f"call syntax: expected one of {SYNTAXES}, got {syntax!r}")
    shown = "argument=value, ..." if arguments is None else ", ".join(
        f"{key}={python_literal(value)}" for key, value in arguments.items())
    call = f"{name}({shown})"
    return f"[{call}]" if syntax == "pythonic" else f"```{FENCE_LANGUAGE}\n{call}\n```"


def render_calls(syntax: str, calls: list[Call]) -> str:
    """Several calls written in ``syntax`` as one message's calls (one list, one block).

    >>> render_calls("pythonic", [("a", {"x": 1}), ("b", {})])
    '[a(x=1), b()]'
    """
    if syntax == "pythonic":
        return "[" + ", ".join(render_call(syntax, name, args)[1:-1] for name, args in calls) + "]"
    if syntax == "fenced_code":
        lines = [render_call(syntax, name, args).split("\n")[1] for name, args in calls]
        return f"```{FENCE_LANGUAGE}\n" + "\n".join(lines) + "\n```"
    return ("; " if syntax == "llama3_json" else "\n").join(render_call(syntax, n, a) for n, a in calls)


def python_literal(value: Any) -> str:
    """``value`` as Python source that :func:`ast.literal_eval` reads back (strings in double quotes).

    >>> python_literal({"a": [1, True, None, "x"]})
    '{"a": [1, True, None, "x"]}'
    """
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def call_lists(text: str) -> list[tuple[int, int, list[Call] | None, str | None]]:
    """Every ``[name(...), ...]`` in ``text`` as (start, end, calls, problem); calls is None when the
    list does not read as keyword calls with literal arguments, and problem then says why.

    Bounded work: at most :data:`MAX_LISTS` lists and :data:`MAX_LIST_ENDS` closing brackets each; a
    list that no closing bracket completes runs to the end of its line.
    """
    found: list[tuple[int, int, list[Call] | None, str | None]] = []
    position = 0
    while len(found) < MAX_LISTS:
        match = _LIST_START.search(text, position)
        if match is None:
            break
        start, end, tree = match.start(), match.start(), None
        for _ in range(MAX_LIST_ENDS):
            end = text.find("]", end + 1)
            if end == -1:
                break
            tree = _parse(text[start : end + 1], "eval")
            if tree is not None:
                break
        if tree is None:
            line_end = text.find("\n", match.end())
            stop = line_end if line_end != -1 else len(text)
            found.append((start, stop, None, "the call list is not valid Python"))
            position = max(stop, match.end())
            continue
        calls, problem = _list_calls(tree.body)  # type: ignore[attr-defined]
        found.append((start, end + 1, calls, problem))
        position = end + 1
    return found


def block_calls(source: str) -> tuple[list[Call] | None, str | None]:
    """The calls of a ``tool_code`` block (one Python call per statement), or (None, why not)."""
    tree = _parse(source.strip(), "exec")
    if tree is None:
        return None, "the block is not valid Python"
    statements = tree.body  # type: ignore[attr-defined]
    if not statements:
        return None, "the block is empty"
    if not all(isinstance(s, ast.Expr) for s in statements):
        return None, "the block must hold only calls, name(argument=value)"
    return _calls([s.value for s in statements])


def _parse(source: str, mode: str) -> ast.AST | None:
    try:
        with warnings.catch_warnings():  # an invalid escape in a string is the model's text, not our warning
            warnings.simplefilter("ignore")
            return ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _list_calls(node: ast.AST) -> tuple[list[Call] | None, str | None]:
    if not isinstance(node, ast.List) or not node.elts:
        return None, "expected a list of calls, [name(argument=value), ...]"
    return _calls(node.elts)


def _calls(nodes: list[ast.expr]) -> tuple[list[Call] | None, str | None]:
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            return None, "expected only calls, name(argument=value)"
        name = _dotted(node.func)
        if name is None:
            return None, "a call must name a tool, name(argument=value)"
        if node.args or any(k.arg is None for k in node.keywords):
            return None, f"pass the arguments of {name} by name, {name}(argument=value)"
        arguments = {}
        for keyword in node.keywords:
            try:
                arguments[str(keyword.arg)] = ast.literal_eval(keyword.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                return None, f"argument {keyword.arg!r} of {name} is not a literal value"
        calls.append((name, arguments))
    return calls, None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def fences(text: str) -> list[tuple[int, int, str, str]]:
    """Fenced code blocks as (start, end, language, content), found line by line (linear time).

    A fence opens on a line starting with ```, optionally followed by a language, and closes at the
    next line starting with ``` (or at the end of the text, when the message was cut off).
    """
    found: list[tuple[int, int, str, str]] = []
    opened: tuple[int, int, str] | None = None  # (start, content start, language)
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        if stripped.startswith("```") and len(line) - len(stripped) <= 3:
            if opened is None:
                words = stripped[3:].split()
                opened = (offset, offset + len(line), words[0].lower() if words else "")
            else:
                found.append(
                    (opened[0], offset + len(line.rstrip("\r\n")), opened[2], text[opened[1] : offset])
                )
                opened = None
        offset += len(line)
    if opened is not None:
        found.append((opened[0], len(text), opened[2], text[opened[1] :]))
    return found


def json_objects(body: str) -> tuple[list[Any], str | None]:
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

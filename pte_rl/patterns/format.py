"""Tool format collapse: calls outside the protocol, from events, parsed calls and the raw text."""

from __future__ import annotations

import json
import re
from typing import Any

from pte_rl.checkers import strip_reasoning
from pte_rl.patterns.base import (
    DEFAULT_CONFIG,
    FORMAT_KINDS,
    PYTHON_FENCE_LANGUAGES,
    Flag,
    PatternConfig,
    snippet,
    turn_texts,
    unique_flags,
)
from pte_rl.pricing.trajectory import Trajectory

_TOOL_CALL_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FENCE = re.compile(r"^ {0,3}```[ \t]*(\w*)[^\n]*\n(.*?)(?:^ {0,3}```|\Z)", re.DOTALL | re.MULTILINE)
_CODE_TOOL = re.compile(r"python|code|jupyter|exec|interpreter|repl", re.IGNORECASE)  # runs a python fence
_JSON_CALL = re.compile(r'\{\s*"name"\s*:\s*"([\w.-]+)"')


def _schemas(trajectory: Trajectory) -> dict[str, Any] | None:
    """Tool name -> its parameters' JSON schema (None when the record lists no tools)."""
    if trajectory.tools is None:
        return None
    out = {}
    for tool in trajectory.tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            out[function["name"]] = function.get("parameters")
    return out


def _call_problem(name: Any, arguments: Any, schemas: dict[str, Any] | None) -> tuple[str, str] | None:
    """(event kind, why) when a call breaks the protocol, else None."""
    if schemas is not None and name not in schemas:
        return "unknown_tool", f"{name!r} is not a given tool ({', '.join(sorted(schemas)) or 'none given'})"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return "bad_json", f"{name} arguments are not JSON ({exc.msg}): {arguments[:120]!r}"
    schema = (schemas or {}).get(name)
    if isinstance(schema, dict):
        import jsonschema  # only when a schema is there to check

        try:
            error = jsonschema.exceptions.best_match(
                jsonschema.validators.validator_for(schema)(schema).iter_errors(
                    {} if arguments is None else arguments
                )
            )
        except jsonschema.exceptions.SchemaError:
            return None  # the log's schema is broken, not the call
        if error is not None:
            return "bad_arguments", f"{name} arguments break the schema: {error.message}"
    return None


def format_collapse(trajectory: Trajectory, config: PatternConfig = DEFAULT_CONFIG) -> list[Flag]:
    flags = [
        Flag("format_collapse", e.turn, e.text or e.detail or e.kind, e.kind)
        for e in trajectory.events
        if e.kind in FORMAT_KINDS
    ]
    schemas = _schemas(trajectory)
    for index, turn in enumerate(trajectory.turns):
        for call in turn.tool_calls:
            problem = (
                (call.error, f"{call.name}: {call.error}")
                if call.error in FORMAT_KINDS
                else _call_problem(call.name, call.arguments, schemas)
            )
            if problem:
                flags.append(Flag("format_collapse", index, problem[1], problem[0]))
    names = set(schemas) if schemas is not None else set(trajectory.tool_call_counts())
    code_tool = any(_CODE_TOOL.search(n) for n in names)
    for index, raw in enumerate(turn_texts(trajectory)):
        text = strip_reasoning(raw)
        blocks = list(_TOOL_CALL_BLOCK.finditer(text))
        for block in blocks:
            try:
                call = json.loads(block.group(1).strip())
            except json.JSONDecodeError as exc:
                flags.append(
                    Flag(
                        "format_collapse",
                        index,
                        f"<tool_call> JSON does not parse ({exc.msg}): "
                        f"{snippet(text, *block.span(), margin=0)[:300]}",
                        "bad_json",
                    )
                )
                continue
            if isinstance(call, dict):
                problem = _call_problem(
                    call.get("name"), call.get("arguments", call.get("parameters")), schemas
                )
                if problem:
                    flags.append(Flag("format_collapse", index, problem[1], problem[0]))
        if blocks or (index < len(trajectory.turns) and trajectory.turns[index].tool_calls):
            continue  # soft failures only count in a turn that makes no call
        outside = text
        for fence in _FENCE.finditer(text):
            language, body = fence.group(1).lower(), fence.group(2)
            if (language in PYTHON_FENCE_LANGUAGES and code_tool and body.strip()) or (
                language in ("json", "") and any(m.group(1) in names for m in _JSON_CALL.finditer(body))
            ):
                flags.append(
                    Flag(
                        "format_collapse",
                        index,
                        f"```{language} block instead of a tool call: "
                        f"{snippet(text, *fence.span(), margin=0)[:300]}",
                        "code_block",
                    )
                )
            outside = outside.replace(fence.group(0), " " * len(fence.group(0)))
        if names:
            alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
            plain = re.compile(rf"(?<![\w.])({alternatives})\s*\(\s*(?:[A-Za-z_]\w*\s*=|[\"'])")
            found = plain.search(outside) or next(
                (m for m in _JSON_CALL.finditer(outside) if m.group(1) in names), None
            )
            if found:
                flags.append(
                    Flag(
                        "format_collapse",
                        index,
                        f"call written as text: {snippet(outside, *found.span())}",
                        "plain_text_call",
                    )
                )
    return unique_flags(flags)

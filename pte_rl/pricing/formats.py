"""Other log shapes, converted to the interchange format before they are read.

Three shapes are read (see docs/scoring.md, "Log shapes"):

- ``openai``: the interchange format itself (``messages`` with ``tool_calls``; :mod:`pte_rl.pricing.jsonl`).
- ``sharegpt``: ``{"conversations": [{"from": ..., "value": ...}], "tools": ..., "system": ...}`` as in
  public tool-use datasets. ``from`` is ``system``, ``human``/``user``, ``gpt``/``assistant``,
  ``function_call`` (an assistant turn whose value is JSON ``{"name", "arguments"}``, or a list of them
  for parallel calls) or ``observation``/``tool`` (a tool response). A turn may carry ``usage`` (on the
  assistant side) or ``tokens`` (on a response), as in the interchange format. A ``function_call`` right after a
  ``gpt`` text turn is the same assistant turn (text, then the call), merged into one message when both
  or neither carry ``usage``.
- ``hermes``: ``messages`` whose assistant ``content`` holds ``<tool_call>{json}</tool_call>`` blocks and
  whose tool results are ``user`` (or ``tool``) turns wrapped in ``<tool_response>...</tool_response>``.

Each record becomes an interchange record (:func:`to_interchange`) and then goes through
:func:`pte_rl.pricing.jsonl.parse_record`, so every shape gives the same :class:`Trajectory`. Errors
name the field of the *source* record (``conversations[3].value``), not of the converted one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pte_rl.pricing.jsonl import FormatError, PathLike, TemplateCounter, Where, parse_record, read_jsonl
from pte_rl.pricing.trajectory import Trajectory

FORMATS = ("auto", "openai", "sharegpt", "hermes")
SHAREGPT_ROLES = {
    "system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "function_call": "assistant", "observation": "tool", "tool": "tool",
}
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_TOOL_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
_RECORD_KEYS = ("id", "task_id", "answer", "ground_truth", "correct", "events", "metadata")

Origins = list[str]
"""For each converted message, the source field it came from (``conversations[3]``)."""


def detect_format(record: Any) -> str:
    """The shape of one record: ``sharegpt`` (has ``conversations``), ``hermes`` (``messages`` with
    ``<tool_call>`` / ``<tool_response>`` text and no ``tool_calls``), else ``openai``.

    >>> detect_format({"conversations": []}), detect_format({"messages": [{"role": "user", "content": "hi"}]})
    ('sharegpt', 'openai')
    >>> detect_format({"messages": [{"role": "assistant", "content": "<tool_call>{}</tool_call>"}]})
    'hermes'
    """
    if not isinstance(record, dict):
        return "openai"
    if "conversations" in record and "messages" not in record:
        return "sharegpt"
    messages = record.get("messages")
    if not isinstance(messages, list):
        return "openai"
    hermes = False
    for m in messages:
        if not isinstance(m, dict):
            continue
        if m.get("tool_calls"):
            return "openai"
        content = m.get("content")
        if isinstance(content, str) and ("<tool_call>" in content or "<tool_response>" in content):
            hermes = True
    return "hermes" if hermes else "openai"


def to_interchange(record: Any, fmt: str, where: Where) -> tuple[dict[str, Any], Origins | None]:
    """One record of shape ``fmt`` -> (an interchange record, the origin of each message or None)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {FORMATS}")
    if not isinstance(record, dict):
        raise FormatError(*where, "<line>", f"expected a JSON object, got {type(record).__name__}")
    if fmt == "auto":
        if "messages" not in record and "conversations" not in record:
            raise FormatError(*where, "messages", "expected a non-empty list of chat messages "
                              "(or 'conversations' for a ShareGPT record)")
        fmt = detect_format(record)
    if fmt == "sharegpt":
        return _from_sharegpt(record, where)
    if fmt == "hermes":
        return _from_hermes(record, where)
    return record, None


def parse_any(
    record: Any, fmt: str = "auto", *, counter: TemplateCounter | None = None, path: str | None = None,
    line: int | None = None,
) -> Trajectory:
    """One record of shape ``fmt`` (or detected, ``auto``) -> :class:`Trajectory`."""
    where: Where = (path, line)
    converted, origins = to_interchange(record, fmt, where)
    try:
        return parse_record(converted, counter=counter, path=path, line=line)
    except FormatError as exc:
        if origins is None:
            raise
        raise FormatError(path, line, _source_field(exc.field, origins), exc.expected) from None


def iter_log(path: PathLike, tokenizer: Any = None, fmt: str = "auto") -> Iterator[Trajectory]:
    """Stream a JSONL log of any supported shape (strictly: a bad line raises)."""
    counter = TemplateCounter(tokenizer) if tokenizer is not None else None
    for line_number, record in read_jsonl(path):
        yield parse_any(record, fmt, counter=counter, path=str(path), line=line_number)


def read_log(path: PathLike, tokenizer: Any = None, fmt: str = "auto") -> list[Trajectory]:
    return list(iter_log(path, tokenizer, fmt))


def _source_field(field: str, origins: Origins) -> str:
    """``messages[4].usage`` of the converted record -> ``conversations[5].usage`` of the source.

    >>> _source_field("messages[1].usage", ["conversations[0]", "conversations[2]"])
    'conversations[2].usage'
    """
    match = re.match(r"messages\[(\d+)\](.*)", field)
    if match is None or int(match.group(1)) >= len(origins):
        return field
    return origins[int(match.group(1))] + match.group(2)


def _extras(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in _RECORD_KEYS if k in record}


def _tools(raw: Any, field: str, where: Where) -> list[dict[str, Any]] | None:
    """Tool definitions: a list, or JSON text of one; bare function schemas wrapped OpenAI-style."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise FormatError(*where, field, "expected a list of tool definitions (or JSON text of one)") from None
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise FormatError(*where, field, "expected a list of tool definitions (objects)")
    return [t if "function" in t else {"type": "function", "function": t} for t in raw]


def _call(raw: Any, field: str, where: Where) -> dict[str, Any]:
    """``{"name", "arguments"}`` -> an OpenAI tool call (arguments as JSON text)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise FormatError(*where, field, 'expected a tool call {"name": "...", "arguments": {...}}')
    arguments = raw.get("arguments", raw.get("parameters"))
    if arguments is not None and not isinstance(arguments, str | dict):
        raise FormatError(*where, field + ".arguments", "expected an object or JSON text")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {}, ensure_ascii=False)
    return {"type": "function", "function": {"name": raw["name"], "arguments": text}}


def _json_value(text: str, field: str, where: Where, expected: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise FormatError(*where, field, expected) from None


def _from_sharegpt(record: dict[str, Any], where: Where) -> tuple[dict[str, Any], Origins]:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise FormatError(*where, "conversations", "expected a non-empty list of {from, value} turns")
    messages: list[dict[str, Any]] = []
    origins: Origins = []
    system = record.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise FormatError(*where, "system", "expected a string")
        messages.append({"role": "system", "content": system})
        origins.append("system")
    for k, turn in enumerate(turns):
        name = f"conversations[{k}]"
        if not isinstance(turn, dict) or not isinstance(turn.get("from"), str) \
                or turn["from"] not in SHAREGPT_ROLES:
            raise FormatError(*where, f"{name}.from", f"expected one of {', '.join(SHAREGPT_ROLES)}")
        value = turn.get("value")
        if value is not None and not isinstance(value, str | dict | list):
            raise FormatError(*where, f"{name}.value", "expected a string")
        message: dict[str, Any] = {"role": SHAREGPT_ROLES[turn["from"]]}
        if turn["from"] == "function_call":
            calls = _json_value(value, f"{name}.value", where, _CALL_JSON) if isinstance(value, str) else value
            calls = calls if isinstance(calls, list) else [calls]
            message.update(content="", tool_calls=[
                _call(c, f"{name}.value" + (f"[{i}]" if len(calls) > 1 else ""), where) for i, c in enumerate(calls)
            ])
            if not calls:
                raise FormatError(*where, f"{name}.value", _CALL_JSON)
        elif not isinstance(value, str | None):
            raise FormatError(*where, f"{name}.value", "expected a string")
        else:
            message["content"] = value or ""
        for key in ("usage", "tokens", "timing", "error"):
            if key in turn:
                message[key] = turn[key]
        if turn["from"] == "function_call" and _merges(messages[-1] if messages else None, message):
            messages[-1] = _merged(messages[-1], message)  # the text and the call of one generation
            continue
        messages.append(message)
        origins.append(name)
    tools = _tools(record.get("tools"), "tools", where)
    out = {**_extras(record), "messages": messages}
    if tools is not None:
        out["tools"] = tools
    return out, origins


def _merges(previous: dict[str, Any] | None, call: dict[str, Any]) -> bool:
    """Whether a ``function_call`` turn continues the ``gpt`` text turn before it: one assistant turn
    that wrote text and then called, as the interchange format holds it. Only when both turns carry
    ``usage`` or neither does (one count without the other cannot be split or joined)."""
    return (previous is not None and previous["role"] == "assistant" and not previous.get("tool_calls")
            and ("usage" in previous) == ("usage" in call))


def _merged(text: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """One assistant message: the text turn's context (``prompt_tokens``, ``cached_tokens``), the
    tokens both decoded (``completion_tokens`` summed).

    >>> _merged({"role": "assistant", "content": "Hm.", "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
    ...         {"role": "assistant", "content": "", "tool_calls": [], "usage": {"prompt_tokens": 11,
    ...          "completion_tokens": 5}})["usage"]
    {'prompt_tokens': 9, 'completion_tokens': 7}
    """
    merged = {**call, **{k: v for k, v in text.items() if k not in ("usage", "tool_calls")}}
    if isinstance(text.get("usage"), dict) and isinstance(call.get("usage"), dict):
        decoded = [u.get("completion_tokens") for u in (text["usage"], call["usage"])]
        usage = dict(text["usage"])
        if all(isinstance(d, int) and not isinstance(d, bool) for d in decoded):
            usage["completion_tokens"] = sum(decoded)
        merged["usage"] = usage
    return merged


_CALL_JSON = 'expected JSON {"name": "...", "arguments": {...}} (or a list of them)'


def _from_hermes(record: dict[str, Any], where: Where) -> tuple[dict[str, Any], Origins]:
    raw = record.get("messages")
    if not isinstance(raw, list) or not raw:
        raise FormatError(*where, "messages", "expected a non-empty list of chat messages")
    messages: list[dict[str, Any]] = []
    origins: Origins = []
    for k, m in enumerate(raw):
        name = f"messages[{k}]"
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
            raise FormatError(*where, f"{name}.role", "expected system, user, assistant or tool")
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            raise FormatError(*where, f"{name}.content", "expected a string")
        text = content or ""
        if m["role"] == "assistant":
            messages.append(_hermes_assistant(m, text, f"{name}.content", where))
            origins.append(name)
        elif _TOOL_RESPONSE.search(text) or m["role"] == "tool":
            for message in _hermes_responses(m, text, f"{name}.content", where):
                messages.append(message)
                origins.append(name)
        else:
            messages.append({key: v for key, v in m.items() if key in ("role", "content", "name")})
            origins.append(name)
    tools = _tools(record.get("tools"), "tools", where)
    out = {**_extras(record), "messages": messages}
    if tools is not None:
        out["tools"] = tools
    return out, origins


def _hermes_assistant(m: dict[str, Any], text: str, field: str, where: Where) -> dict[str, Any]:
    calls = []
    for block in _TOOL_CALL.findall(text):
        value = _json_value(block.strip(), field, where, 'expected <tool_call> blocks holding JSON '
                            '{"name": "...", "arguments": {...}}')
        calls.append(_call(value, field, where))
    rest = _TOOL_CALL.sub("", text)
    if "<tool_call>" in rest or "</tool_call>" in rest:
        raise FormatError(*where, field, "expected every <tool_call> closed by </tool_call>")
    message: dict[str, Any] = {"role": "assistant", "content": rest.strip()}
    if calls:
        message["tool_calls"] = calls
    for key in ("usage", "timing"):
        if key in m:
            message[key] = m[key]
    return message


def _hermes_responses(m: dict[str, Any], text: str, field: str, where: Where) -> list[dict[str, Any]]:
    """A tool-result turn -> one tool message per ``<tool_response>`` block (the whole text if none)."""
    blocks = [b.strip() for b in _TOOL_RESPONSE.findall(text)] or [text]
    rest = _TOOL_RESPONSE.sub("", text)
    if "<tool_response>" in rest or "</tool_response>" in rest:
        raise FormatError(*where, field, "expected every <tool_response> closed by </tool_response>")
    out: list[dict[str, Any]] = [{"role": "tool", "content": b} for b in blocks]
    if "tokens" in m:
        if len(blocks) > 1:
            raise FormatError(*where, field.rsplit(".", 1)[0] + ".tokens",
                              "expected no 'tokens' on a turn of several <tool_response> blocks")
        out[0]["tokens"] = m["tokens"]
    if "error" in m:
        out[-1]["error"] = m["error"]
    return out

"""The interchange format: trajectories as JSONL lines compatible with OpenAI chat logs.

One JSON object per line::

    {"id": "t1", "task_id": "arith-17", "answer": "42", "ground_truth": "42", "correct": true,
     "tools": [{"type": "function", "function": {"name": "python", "parameters": {...}}}],
     "messages": [
       {"role": "system", "content": "..."},
       {"role": "user", "content": "What is 6*7?"},
       {"role": "assistant", "content": "", "tool_calls": [{"id": "c0", "type": "function",
          "function": {"name": "python", "arguments": "{\\"code\\": \\"print(6*7)\\"}"}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 18, "cached_tokens": 0}},
       {"role": "tool", "tool_call_id": "c0", "content": "42", "tokens": 9},
       {"role": "assistant", "content": "The answer is 42.",
        "usage": {"prompt_tokens": 147, "completion_tokens": 7}}
     ]}

Token counts come from each assistant message's ``usage`` (``prompt_tokens`` = the context before
the turn, ``completion_tokens`` = the tokens decoded, ``cached_tokens`` or
``prompt_tokens_details.cached_tokens`` = the prefix served from cache). Where ``usage`` is missing,
they are counted with a tokenizer by rendering the chat through its template: the context of turn i is
the rendering of the messages before it plus the generation prompt; its decode tokens are what the
assistant message adds to that rendering.

pte_rl's own optional extensions, ignored by other readers: ``tokens`` and ``error`` on tool
messages (the tokens the response appended; the tool's error kind), ``timing`` on assistant messages
(``prefill_s``, ``decode_s``), and top-level ``events`` and ``metadata``.

Reading is strict: a bad line raises :class:`FormatError` naming the file, the line, the field, and
what was expected. Writing is atomic: a file is complete or absent.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pte_rl.errors import InputError
from pte_rl.pricing.trajectory import Event, ToolCall, Trajectory, Turn, _content_text


class FormatError(InputError):
    """Bad input: names the file, the line (1-based), the field, and what was expected."""

    def __init__(self, path: str | os.PathLike | None, line: int | None, field: str, expected: str):
        self.path, self.line, self.field, self.expected = path, line, field, expected
        where = f"{path}:{line}" if path is not None and line is not None else (str(path) if path else "record")
        super().__init__(f"{where}: field '{field}': {expected}")


def _count(value: Any, field: str, where: tuple) -> int:
    if (
        isinstance(value, bool) or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value)) or value != int(value) or value < 0
    ):
        raise FormatError(*where, field, f"expected a non-negative integer, got {value!r}")
    return int(value)


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw  # kept as text: the pattern detectors judge it
    return raw


def _split(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder)."""
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    raw = [total * w / weight_sum for w in weights]
    parts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


class TemplateCounter:
    """Counts turn boundaries by rendering messages with a tokenizer's chat template."""

    def __init__(self, tokenizer: Any):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template; pte_rl needs one to count turns")
        self.tokenizer = tokenizer

    def length(self, messages: list[dict], tools: list[dict] | None, generation_prompt: bool) -> int:
        text = self.tokenizer.apply_chat_template(
            _renderable(messages), tools=tools, tokenize=False, add_generation_prompt=generation_prompt
        )
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def _renderable(messages: list[dict]) -> list[dict]:
    """Templates expect tool-call arguments as objects, not the JSON strings OpenAI logs hold."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c.get("function", c))
                args = _arguments(fn.get("arguments"))
                fn["arguments"] = args if isinstance(args, dict) else {"_raw": args}
                calls.append({**c, "function": fn})
            m = {**m, "tool_calls": calls}
        out.append({k: v for k, v in m.items() if k not in ("usage", "timing", "tokens", "error")})
    return out


def parse_record(
    record: Any, *, counter: TemplateCounter | None = None, path: str | None = None, line: int | None = None
) -> Trajectory:
    """One JSONL object -> :class:`Trajectory`. Raises :class:`FormatError` on bad input."""
    where = (path, line)
    if not isinstance(record, dict):
        raise FormatError(*where, "<line>", f"expected a JSON object, got {type(record).__name__}")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise FormatError(*where, "messages", "expected a non-empty list of chat messages")
    tools = record.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise FormatError(*where, "tools", "expected a list of OpenAI-style tool definitions")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
            raise FormatError(*where, f"messages[{k}].role", "expected system, user, assistant or tool")

    assistant_idx = [k for k, m in enumerate(messages) if m["role"] == "assistant"]
    turns: list[Turn] = []
    tool_msgs_per_turn: list[list[tuple[int, dict]]] = []
    for n, k in enumerate(assistant_idx):
        m = messages[k]
        usage = m.get("usage")
        if usage is not None:
            if not isinstance(usage, dict):
                raise FormatError(*where, f"messages[{k}].usage", "expected an object")
            for key in ("prompt_tokens", "completion_tokens"):
                if key not in usage:
                    raise FormatError(*where, f"messages[{k}].usage.{key}", "expected a non-negative integer")
            context = _count(usage["prompt_tokens"], f"messages[{k}].usage.prompt_tokens", where)
            decode = _count(usage["completion_tokens"], f"messages[{k}].usage.completion_tokens", where)
            cached = usage.get("cached_tokens")
            if cached is None and isinstance(usage.get("prompt_tokens_details"), dict):
                cached = usage["prompt_tokens_details"].get("cached_tokens")
            if cached is not None:
                cached = _count(cached, f"messages[{k}].usage.cached_tokens", where)
        elif counter is not None:
            context = counter.length(messages[:k], tools, generation_prompt=True)
            decode = max(0, counter.length(messages[: k + 1], tools, generation_prompt=False) - context)
            cached = None
        else:
            raise FormatError(
                *where, f"messages[{k}].usage",
                "expected {prompt_tokens, completion_tokens}, or a tokenizer (--tokenizer DIR) to count with",
            )
        timing = m.get("timing") or {}
        if not isinstance(timing, dict):
            raise FormatError(*where, f"messages[{k}].timing", "expected an object {prefill_s, decode_s}")
        turns.append(Turn(context, decode, cached, [], 0, timing.get("prefill_s"), timing.get("decode_s")))
        # The tool calls of this turn, matched to their tool messages by id, else by order.
        raw_calls = m.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise FormatError(*where, f"messages[{k}].tool_calls", "expected a list")
        end = assistant_idx[n + 1] if n + 1 < len(assistant_idx) else len(messages)
        tool_msgs = [(j, messages[j]) for j in range(k + 1, end) if messages[j]["role"] == "tool"]
        by_id = {tm.get("tool_call_id"): (j, tm) for j, tm in tool_msgs if tm.get("tool_call_id")}
        unmatched = [(j, tm) for j, tm in tool_msgs if not tm.get("tool_call_id")]
        for c_i, c in enumerate(raw_calls):
            fn = c.get("function", c) if isinstance(c, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise FormatError(*where, f"messages[{k}].tool_calls[{c_i}].function.name", "expected a string")
            match = by_id.pop(c.get("id"), None) if c.get("id") in by_id else (unmatched.pop(0) if unmatched else None)
            tm = match[1] if match else {}
            turns[-1].tool_calls.append(
                ToolCall(
                    name=fn["name"], arguments=_arguments(fn.get("arguments")), error=tm.get("error"),
                    output=_content_text(tm.get("content")) if match else None, call_id=c.get("id"),
                )
            )
        tool_msgs_per_turn.append(tool_msgs)

    _fill_tool_tokens(turns, tool_msgs_per_turn, messages, tools, counter, where)
    events = []
    for e_i, e in enumerate(record.get("events") or []):
        if not isinstance(e, dict) or "kind" not in e or isinstance(e.get("turn"), bool) \
                or not isinstance(e.get("turn"), int):
            raise FormatError(*where, f"events[{e_i}]", "expected an object with 'turn' (an integer) and 'kind'")
        events.append(Event(turn=int(e["turn"]), kind=str(e["kind"]), detail=str(e.get("detail", "")),
                            text=str(e.get("text", "")), tool=e.get("tool")))
    correct = record.get("correct")
    if correct is not None and not isinstance(correct, bool | int):
        raise FormatError(*where, "correct", "expected true, false or null")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise FormatError(*where, "metadata", "expected an object")
    return Trajectory(
        turns=turns, id=None if record.get("id") is None else str(record["id"]),
        task_id=None if record.get("task_id") is None else str(record["task_id"]),
        answer=record.get("answer"), ground_truth=record.get("ground_truth"),
        correct=None if correct is None else bool(correct), messages=messages, tools=tools,
        events=events, metadata=metadata,
    )


def _fill_tool_tokens(
    turns: list[Turn], tool_msgs_per_turn: list[list[tuple[int, dict]]], messages: list[dict], tools, counter, where
) -> None:
    """Tokens appended after each turn, and each tool response's share of them."""
    for n, (turn, tool_msgs) in enumerate(zip(turns, tool_msgs_per_turn)):
        given = [tm.get("tokens") for _, tm in tool_msgs]
        per_msg: list[int] | None = None
        if tool_msgs and all(g is not None for g in given):
            per_msg = [_count(g, f"messages[{j}].tokens", where) for (j, _), g in zip(tool_msgs, given)]
        elif tool_msgs and counter is not None:
            per_msg = [
                max(0, counter.length(messages[: j + 1], tools, False) - counter.length(messages[:j], tools, False))
                for j, _ in tool_msgs
            ]
        if n + 1 < len(turns):
            appended = turns[n + 1].context_tokens - turn.context_tokens - turn.decode_tokens
            turn.tool_tokens = max(0, appended)
        else:
            turn.tool_tokens = sum(per_msg) if per_msg else 0
        if per_msg is None:
            per_msg = _split(turn.tool_tokens, [len(_content_text(tm.get("content"))) for _, tm in tool_msgs])
        # Calls and their messages pair up in order; surplus messages add to the last call.
        for c_i, call in enumerate(turn.tool_calls):
            if c_i < len(per_msg):
                call.response_tokens = per_msg[c_i]
        if turn.tool_calls and len(per_msg) > len(turn.tool_calls):
            turn.tool_calls[-1].response_tokens += sum(per_msg[len(turn.tool_calls):])


def iter_trajectories(path: str | os.PathLike, tokenizer: Any = None) -> Iterator[Trajectory]:
    """Stream a JSONL file of trajectories; blank lines are skipped."""
    counter = TemplateCounter(tokenizer) if tokenizer is not None else None
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        raise FormatError(str(path), None, "<file>", f"cannot be read: {exc.strerror}") from exc
    with handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(str(path), line_no, "<line>", f"expected valid JSON ({exc.msg} at column {exc.colno})") from exc
            yield parse_record(record, counter=counter, path=str(path), line=line_no)


def read_trajectories(path: str | os.PathLike, tokenizer: Any = None) -> list[Trajectory]:
    return list(iter_trajectories(path, tokenizer))


def to_record(trajectory: Trajectory) -> dict:
    """:class:`Trajectory` -> a JSONL object in the interchange format (the inverse of parse_record).

    Every assistant message gets exact ``usage`` from its turn; every tool message gets ``tokens``
    and, when the call failed, ``error``.
    """
    if trajectory.messages is None:
        raise ValueError("a trajectory needs its messages to be written in the interchange format")
    messages = [dict(m) for m in trajectory.messages]
    assistant_idx = [k for k, m in enumerate(messages) if m.get("role") == "assistant"]
    if len(assistant_idx) != len(trajectory.turns):
        raise ValueError(f"{len(assistant_idx)} assistant messages but {len(trajectory.turns)} turns")
    for n, (k, turn) in enumerate(zip(assistant_idx, trajectory.turns)):
        usage = {"prompt_tokens": turn.context_tokens, "completion_tokens": turn.decode_tokens}
        if turn.cached_tokens is not None:
            usage["cached_tokens"] = turn.cached_tokens
        messages[k]["usage"] = usage
        if turn.prefill_time_s is not None or turn.decode_time_s is not None:
            messages[k]["timing"] = {"prefill_s": turn.prefill_time_s, "decode_s": turn.decode_time_s}
        end = assistant_idx[n + 1] if n + 1 < len(assistant_idx) else len(messages)
        tool_positions = [j for j in range(k + 1, end) if messages[j].get("role") == "tool"]
        for j, call in zip(tool_positions, turn.tool_calls):
            messages[j]["tokens"] = call.response_tokens
            if call.error:
                messages[j]["error"] = call.error
    record: dict[str, Any] = {"id": trajectory.id, "task_id": trajectory.task_id, "messages": messages}
    if trajectory.tools is not None:
        record["tools"] = trajectory.tools
    record.update(answer=trajectory.answer, ground_truth=trajectory.ground_truth, correct=trajectory.correct)
    if trajectory.events:
        record["events"] = [
            {"turn": e.turn, "kind": e.kind, "detail": e.detail, "text": e.text, "tool": e.tool}
            for e in trajectory.events
        ]
    if trajectory.metadata:
        record["metadata"] = trajectory.metadata
    return record


def write_atomic(path: str | os.PathLike, text_chunks: Iterable[str]) -> None:
    """Write to a temporary file beside ``path`` and rename it into place: complete or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for chunk in text_chunks:
                handle.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Atomically write JSON objects, one a line."""
    write_atomic(path, (json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))


def write_trajectories(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> None:
    write_jsonl(path, (to_record(t) for t in trajectories))

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
what was expected. A gzip-compressed file (``log.jsonl.gz``, known by its first bytes, whatever its
name) is read as the JSONL it holds. Writing is atomic: a file is complete or absent.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pte_rl.pricing.checks import FormatError as FormatError
from pte_rl.pricing.checks import PathLike as PathLike
from pte_rl.pricing.checks import Where as Where
from pte_rl.pricing.checks import check_message, check_record, count
from pte_rl.pricing.trajectory import Event, ToolCall, Trajectory, Turn, _content_text, parse_arguments, renderable

# ---------------------------------------------------------------- reading JSONL

GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of a gzip file: such a log is decompressed as it is read, whatever its name."""


class _BadLine(Exception):
    """A line that is not one JSON object; the message says what was expected."""


class JsonlLines:
    """The objects of a JSONL file as ``(line number, object)`` pairs, read lazily; blank lines skipped.

    Strict (the default): a line that is not a JSON object in UTF-8 raises :class:`FormatError` naming
    ``file:line``. Lenient: such a line (the half-written last line of a killed writer, say) is passed
    over and its number appended to :attr:`skipped`, for the caller to log. A file that cannot be opened
    raises :class:`FormatError` either way. Lines end at ``\n`` only, as in JSON Lines: a JSON string may
    hold U+2028 and other characters that ``str.splitlines`` would split at. A gzip file (its first two
    bytes ``1f 8b``) is decompressed as it is read; a damaged or cut one raises :class:`FormatError`
    naming the line it reached, strict or not (what follows cannot be read).
    """

    def __init__(self, path: PathLike, *, strict: bool = True):
        self.path, self.strict = path, strict
        self.skipped: list[int] = []
        """Line numbers of the lines lenient reading passed over (reset on every iteration)."""

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        self.skipped = []
        try:
            file = open(self.path, "rb")  # noqa: SIM115 - closed by the with block below
        except OSError as exc:
            raise FormatError(str(self.path), None, "<file>", f"cannot be read: {exc.strerror}") from exc
        with file:
            try:
                compressed = file.peek(2)[:2] == GZIP_MAGIC
            except OSError as exc:
                raise FormatError(str(self.path), None, "<file>", f"cannot be read: {exc.strerror}") from exc
            lines: Iterator[bytes] = iter(gzip.GzipFile(fileobj=file, mode="rb") if compressed else file)
            line_number = 0
            while True:
                line_number += 1
                try:
                    raw = next(lines)
                except StopIteration:
                    break
                except (OSError, EOFError, zlib.error) as exc:  # a damaged or truncated gzip stream
                    raise FormatError(str(self.path), line_number, "<file>",
                                      f"expected a complete gzip stream ({exc})") from None
                if not raw.strip():
                    continue
                try:
                    record = _json_object(raw)
                except _BadLine as exc:
                    if self.strict:
                        raise FormatError(str(self.path), line_number, "<line>", str(exc)) from None
                    self.skipped.append(line_number)
                    continue
                yield line_number, record


def read_jsonl(path: PathLike, *, strict: bool = True) -> JsonlLines:
    """The one JSONL reader: iterate it for ``(line number, object)``; see :class:`JsonlLines`.

    >>> import tempfile; path = Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> _ = path.write_text('{"a": 1}\\n\\n{"b": 2}\\n{"c": ')
    >>> lines = read_jsonl(path, strict=False)
    >>> list(lines), lines.skipped
    ([(1, {'a': 1}), (3, {'b': 2})], [4])
    """
    return JsonlLines(path, strict=strict)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.rstrip(b"\r\n").decode("utf-8")  # without its end, so that columns count on its line
    except UnicodeDecodeError as exc:
        raise _BadLine(f"expected UTF-8 text (byte {exc.start + 1} is not)") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"expected valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _BadLine("expected valid JSON (nesting too deep to read)") from None
    except ValueError:  # Python's limit on the digits of an integer read from text
        raise _BadLine("expected valid JSON (a number of over 4300 digits)") from None
    if not isinstance(record, dict):
        raise _BadLine(f"expected a JSON object, got {type(record).__name__}")
    return record


# ---------------------------------------------------------------- records -> trajectories


def _split(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder).

    >>> _split(10, [1, 1, 1]), _split(5, [0, 0]), _split(7, [3, 1])
    ([4, 3, 3], [3, 2], [5, 2])
    """
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

    def length(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, generation_prompt: bool
    ) -> int:
        text = self.tokenizer.apply_chat_template(
            renderable(messages), tools=tools, tokenize=False, add_generation_prompt=generation_prompt
        )
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


ToolMessages = list[tuple[int, dict[str, Any]]]
"""The tool messages after one assistant message: (index in the chat, message)."""


def parse_record(
    record: Any, *, counter: TemplateCounter | None = None, path: str | None = None, line: int | None = None
) -> Trajectory:
    """One JSONL object -> :class:`Trajectory`. Raises :class:`FormatError` on bad input."""
    where: Where = (path, line)
    messages, tools = _checked_chat(record, where)
    assistant_idx = [k for k, m in enumerate(messages) if m["role"] == "assistant"]
    turns: list[Turn] = []
    tool_msgs_per_turn: list[ToolMessages] = []
    for n, k in enumerate(assistant_idx):
        end = assistant_idx[n + 1] if n + 1 < len(assistant_idx) else len(messages)
        tool_msgs = [(j, messages[j]) for j in range(k + 1, end) if messages[j]["role"] == "tool"]
        turn = _turn(messages, k, tools, counter, where)
        turn.tool_calls.extend(_tool_calls(messages[k], k, tool_msgs, where))
        turns.append(turn)
        tool_msgs_per_turn.append(tool_msgs)
    _fill_tool_tokens(turns, tool_msgs_per_turn, messages, tools, counter, where)
    events = _events(record.get("events") or [], where)
    correct, metadata = record.get("correct"), record.get("metadata") or {}
    answer = record.get("answer")
    return Trajectory(
        turns=turns, id=None if record.get("id") is None else str(record["id"]),
        task_id=None if record.get("task_id") is None else str(record["task_id"]),
        answer=None if answer is None else str(answer), ground_truth=record.get("ground_truth"),
        correct=None if correct is None else bool(correct), messages=messages, tools=tools,
        events=events, metadata=metadata,
    )


def _checked_chat(record: Any, where: Where) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The record's messages (each with a known role) and tools, checked."""
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
        check_message(m, k, where)
    check_record(record, where)
    return messages, tools


def _turn(
    messages: list[dict[str, Any]], k: int, tools: list[dict[str, Any]] | None, counter: TemplateCounter | None,
    where: Where,
) -> Turn:
    """The turn of assistant message ``k``: tokens from its ``usage``, else counted with the template."""
    m = messages[k]
    usage = m.get("usage")
    cached: int | None = None
    if usage is not None:
        if not isinstance(usage, dict):
            raise FormatError(*where, f"messages[{k}].usage", "expected an object")
        for key in ("prompt_tokens", "completion_tokens"):
            if key not in usage:
                raise FormatError(*where, f"messages[{k}].usage.{key}", "expected a non-negative integer")
        context = count(usage["prompt_tokens"], f"messages[{k}].usage.prompt_tokens", where)
        decode = count(usage["completion_tokens"], f"messages[{k}].usage.completion_tokens", where)
        raw_cached = usage.get("cached_tokens")
        if raw_cached is None and isinstance(usage.get("prompt_tokens_details"), dict):
            raw_cached = usage["prompt_tokens_details"].get("cached_tokens")
        if raw_cached is not None:
            cached = count(raw_cached, f"messages[{k}].usage.cached_tokens", where)
    elif counter is not None:
        context = counter.length(messages[:k], tools, generation_prompt=True)
        decode = max(0, counter.length(messages[: k + 1], tools, generation_prompt=False) - context)
    else:
        raise FormatError(
            *where, f"messages[{k}].usage",
            "expected {prompt_tokens, completion_tokens}, or a tokenizer (--tokenizer DIR) to count with",
        )
    timing = m.get("timing") or {}
    if not isinstance(timing, dict):
        raise FormatError(*where, f"messages[{k}].timing", "expected an object {prefill_s, decode_s}")
    return Turn(context, decode, cached, [], 0, timing.get("prefill_s"), timing.get("decode_s"))


def _tool_calls(m: dict[str, Any], k: int, tool_msgs: ToolMessages, where: Where) -> list[ToolCall]:
    """The tool calls of assistant message ``k``, matched to their tool messages by id, else by order."""
    raw_calls = m.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise FormatError(*where, f"messages[{k}].tool_calls", "expected a list")
    by_id = {tm.get("tool_call_id"): (j, tm) for j, tm in tool_msgs if tm.get("tool_call_id")}
    unmatched = [(j, tm) for j, tm in tool_msgs if not tm.get("tool_call_id")]
    calls = []
    for c_i, c in enumerate(raw_calls):
        fn = c.get("function", c) if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise FormatError(*where, f"messages[{k}].tool_calls[{c_i}].function.name", "expected a string")
        match = by_id.pop(c.get("id"), None) if c.get("id") in by_id else (unmatched.pop(0) if unmatched else None)
        tm = match[1] if match else {}
        calls.append(ToolCall(
            name=fn["name"], arguments=parse_arguments(fn.get("arguments")), error=tm.get("error"),
            output=_content_text(tm.get("content")) if match else None, call_id=c.get("id"),
        ))
    return calls


def _events(raw_events: Any, where: Where) -> list[Event]:
    events = []
    for e in raw_events:  # checked by check_record
        events.append(Event(turn=int(e["turn"]), kind=str(e["kind"]), detail=str(e.get("detail", "")),
                            text=str(e.get("text", "")), tool=e.get("tool")))
    return events


def _fill_tool_tokens(
    turns: list[Turn], tool_msgs_per_turn: list[ToolMessages], messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None, counter: TemplateCounter | None, where: Where,
) -> None:
    """Tokens appended after each turn, and each tool response's share of them."""
    for n, (turn, tool_msgs) in enumerate(zip(turns, tool_msgs_per_turn, strict=True)):
        given = [tm.get("tokens") for _, tm in tool_msgs]
        per_msg: list[int] | None = None
        if tool_msgs and all(g is not None for g in given):
            per_msg = [count(g, f"messages[{j}].tokens", where) for (j, _), g in zip(tool_msgs, given, strict=True)]
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


def iter_trajectories(path: PathLike, tokenizer: Any = None) -> Iterator[Trajectory]:
    """Stream a JSONL file of trajectories (strictly: a bad line raises); blank lines are skipped."""
    counter = TemplateCounter(tokenizer) if tokenizer is not None else None
    for line_number, record in read_jsonl(path):
        yield parse_record(record, counter=counter, path=str(path), line=line_number)


def read_trajectories(path: PathLike, tokenizer: Any = None) -> list[Trajectory]:
    return list(iter_trajectories(path, tokenizer))


def to_record(trajectory: Trajectory) -> dict[str, Any]:
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
    for n, (k, turn) in enumerate(zip(assistant_idx, trajectory.turns, strict=True)):
        usage = {"prompt_tokens": turn.context_tokens, "completion_tokens": turn.decode_tokens}
        if turn.cached_tokens is not None:
            usage["cached_tokens"] = turn.cached_tokens
        messages[k]["usage"] = usage
        if turn.prefill_time_s is not None or turn.decode_time_s is not None:
            messages[k]["timing"] = {"prefill_s": turn.prefill_time_s, "decode_s": turn.decode_time_s}
        end = assistant_idx[n + 1] if n + 1 < len(assistant_idx) else len(messages)
        tool_positions = [j for j in range(k + 1, end) if messages[j].get("role") == "tool"]
        for j, call in zip(tool_positions, turn.tool_calls, strict=False):  # surplus messages: no call
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


def write_atomic(path: PathLike, text_chunks: Iterable[str]) -> None:
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


def write_jsonl(path: PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Atomically write JSON objects, one a line."""
    write_atomic(path, (json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))


def write_trajectories(path: PathLike, trajectories: Iterable[Trajectory]) -> None:
    write_jsonl(path, (to_record(t) for t in trajectories))

"""Trajectory records: the one data type every part of pte_rl prices, scores and logs.

A *turn* is one assistant generation: the engine prefilled ``context_tokens`` (C_i in the paper),
then decoded ``decode_tokens`` (D_decode_i). Tool responses and chat-template tokens appended after
the turn are ``tool_tokens``; they are part of the next turn's context. Failures of the tool-call
protocol and of the tools themselves are data: an :class:`Event` in the trajectory, and a tool message
the model saw, never an exception.

These types need no torch and no TRL, so that logs can be priced anywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Event kinds written by the tool-call parser, the tools and the rollout loop; read by pte_rl.patterns.
EVENT_KINDS = (
    "bad_json",  # a <tool_call> (or JSON call) whose body is not valid JSON (truncated, malformed)
    "unknown_tool",  # a well-formed call naming a tool the model was not given
    "bad_arguments",  # arguments that break the tool's JSON schema
    "code_block",  # a call written as a fenced code block instead of the tool-call protocol
    "plain_text_call",  # a call written as plain text, e.g. `python(...)`, outside the protocol
    "tool_error",  # the tool ran and failed: exception, timeout, memory, killed
    "empty_output",  # the tool ran and returned nothing
    "truncated_output",  # the tool's output was cut to the response budget
    "max_turns",  # the loop stopped at max_turns before a final answer
    "max_tokens",  # the loop stopped at the completion budget before a final answer
)


@dataclass(slots=True)
class ToolCall:
    """One tool call made in a turn, and what its response cost.

    ``response_tokens`` counts the tokens the response appended to the context (its tool message
    rendered through the chat template). ``error`` is ``None`` on success, else an event kind or a
    tool error kind (``timeout``, ``memory``, ``killed``, ``exception``).
    """

    name: str
    arguments: Any = None
    response_tokens: int = 0
    error: str | None = None
    output: str | None = None
    duration_s: float | None = None
    call_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.response_tokens, int) or self.response_tokens < 0:
            raise ValueError(f"ToolCall.response_tokens: expected a non-negative int, got {self.response_tokens!r}")


@dataclass(slots=True)
class Turn:
    """One assistant generation.

    Fields (paper symbols in brackets):
      context_tokens: tokens in the context when decoding starts [C_i]; all of them are prefilled
        again under the paper's ``evict`` cache policy [P_i].
      decode_tokens: tokens generated in this turn [D_decode_i].
      cached_tokens: prefix tokens the engine served from its cache, when it reports them.
      tool_calls: the calls parsed from this turn's output.
      tool_tokens: tokens appended after this turn (tool responses + template) before the next turn.
      prefill_time_s / decode_time_s: measured generation time, when known (tools excluded).
    """

    context_tokens: int
    decode_tokens: int
    cached_tokens: int | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_tokens: int = 0
    prefill_time_s: float | None = None
    decode_time_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("context_tokens", "decode_tokens", "tool_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Turn.{name}: expected a non-negative int, got {value!r}")
        cached = self.cached_tokens
        if cached is not None and (isinstance(cached, bool) or not isinstance(cached, int) or cached < 0):
            raise ValueError(f"Turn.cached_tokens: expected a non-negative int or None, got {cached!r}")

    @property
    def time_s(self) -> float | None:
        if self.prefill_time_s is None and self.decode_time_s is None:
            return None
        return (self.prefill_time_s or 0.0) + (self.decode_time_s or 0.0)


@dataclass(slots=True)
class Event:
    """A protocol or tool failure (or a loop stop) at a turn, with the text that shows it."""

    turn: int
    kind: str
    detail: str = ""
    text: str = ""
    tool: str | None = None


@dataclass(slots=True)
class Trajectory:
    """A whole rollout: its turns, its OpenAI-style messages, and how it was graded.

    ``messages`` holds the chat (system / user / assistant / tool) when known; turn ``i`` is the
    ``i``-th assistant message. ``correct`` is ``None`` when the trajectory was not graded.
    """

    turns: list[Turn]
    id: str | None = None
    task_id: str | None = None
    answer: str | None = None
    ground_truth: Any = None
    correct: bool | None = None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    events: list[Event] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def decode_tokens(self) -> int:
        """Generated tokens over all turns."""
        return sum(t.decode_tokens for t in self.turns)

    @property
    def num_tool_calls(self) -> int:
        return sum(len(t.tool_calls) for t in self.turns)

    def tool_call_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for turn in self.turns:
            for call in turn.tool_calls:
                counts[call.name] = counts.get(call.name, 0) + 1
        return counts

    def assistant_texts(self) -> list[str]:
        """The text of each assistant message (turn order); empty strings when messages are unknown."""
        if not self.messages:
            return ["" for _ in self.turns]
        texts = [_content_text(m.get("content")) for m in self.messages if m.get("role") == "assistant"]
        texts += ["" for _ in range(len(self.turns) - len(texts))]
        return texts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """Inverse of :meth:`to_dict` (the in-memory dataclass layout, not the JSONL interchange format)."""
        turns = [
            Turn(**{**t, "tool_calls": [ToolCall(**c) for c in t.get("tool_calls", [])]}) for t in data["turns"]
        ]
        events = [Event(**e) for e in data.get("events", [])]
        rest = {k: v for k, v in data.items() if k not in ("turns", "events")}
        return cls(turns=turns, events=events, **rest)


def _content_text(content: Any) -> str:
    """OpenAI content may be a string, None, or a list of parts ({"type": "text", "text": ...})."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def parse_arguments(raw: Any) -> Any:
    """Tool-call arguments as an object: JSON text parsed; text that is not JSON kept as text (the
    pattern detectors judge it).

    >>> parse_arguments('{"x": 1}'), parse_arguments('{"x": '), parse_arguments({"x": 1})
    ({'x': 1}, '{"x": ', {'x': 1})
    """
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


# pte_rl's own message keys (pte_rl.pricing.jsonl), which chat templates do not expect.
_EXTENSION_KEYS = ("usage", "timing", "tokens", "error")


def renderable(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-template input: tool-call arguments as objects (OpenAI logs hold JSON strings; what is not
    a JSON object becomes ``{"_raw": arguments}``), without pte_rl's extension keys.

    >>> renderable([{"role": "assistant", "content": "", "usage": {"prompt_tokens": 1},
    ...              "tool_calls": [{"function": {"name": "f", "arguments": '{"x": 1}'}}]}])
    [{'role': 'assistant', 'content': '', 'tool_calls': [{'function': {'name': 'f', 'arguments': {'x': 1}}}]}]
    """
    out = []
    for message in messages:
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = dict(call.get("function", call))
                arguments = parse_arguments(function.get("arguments"))
                function["arguments"] = arguments if isinstance(arguments, dict) else {"_raw": arguments}
                calls.append({**call, "function": function})
            message = {**message, "tool_calls": calls}
        out.append({k: v for k, v in message.items() if k not in _EXTENSION_KEYS})
    return out

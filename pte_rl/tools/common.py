"""Small pieces shared by the tools: tool text with metadata, input errors, truncation markers.

Every cut that pte_rl makes to a tool response leaves a visible marker in the text, so that the model
(and anyone reading a log) knows that something was omitted::

    [... output truncated: 1234 bytes omitted ...]
"""

from __future__ import annotations

from typing import Literal, Self

TRUNCATION_PREFIX = "[... "


class ToolInputError(ValueError):
    """A tool call whose arguments are well-typed but unusable (an unknown page, a bad expression).

    The call's tool message is ``Error: <message>`` and the call is recorded with a ``tool_error``
    event; nothing is raised out of the rollout loop.
    """


class ToolText(str):
    """A tool's response text that also carries what went wrong, if anything.

    A tool function returns ``str``; returning a ``ToolText`` lets it say that the text reports a
    failure (``error``: ``timeout``, ``memory``, ``killed``, ``exception``, ``output_limit``) or that it
    was cut to a budget (``truncated``). :func:`pte_rl.tools.execute_calls` turns these into events.
    """

    error: str | None
    truncated: bool

    def __new__(cls, text: str, error: str | None = None, truncated: bool = False) -> Self:
        obj = super().__new__(cls, text)
        obj.error = error
        obj.truncated = truncated
        return obj


def truncation_marker(omitted: int, unit: str = "bytes", what: str = "output") -> str:
    """The visible marker for a cut: ``[... output truncated: 42 bytes omitted ...]``."""
    return f"{TRUNCATION_PREFIX}{what} truncated: {omitted} {unit} omitted ...]"


def cut_text(
    text: str, budget: int, *, keep: Literal["head", "head_tail"] = "head", what: str = "output"
) -> tuple[str, bool]:
    """Cut ``text`` to ``budget`` characters (plus the marker); return (text, was_cut).

    ``keep="head"`` keeps the first ``budget`` characters; ``"head_tail"`` keeps the first and the last
    ``budget // 2`` (where tracebacks and final results are).
    """
    if budget < 0:
        raise ValueError(f"budget: expected a non-negative number of characters, got {budget}")
    if len(text) <= budget:
        return text, False
    if keep == "head":
        head, tail = text[:budget], ""
    else:
        head_len = budget - budget // 2
        head, tail = text[:head_len], text[len(text) - budget // 2 :] if budget // 2 else ""
    marker = truncation_marker(len(text) - len(head) - len(tail), "characters", what)
    return f"{head}\n{marker}" + (f"\n{tail}" if tail else ""), True

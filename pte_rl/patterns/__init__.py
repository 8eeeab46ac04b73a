"""Inefficiency patterns in tool-using trajectories: per-trajectory flags with evidence, batch rates.

Each detector reads a :class:`pte_rl.pricing.trajectory.Trajectory` (the rollout's records, or a user's
log read with pte_rl.pricing.jsonl) and returns :class:`Flag` s, each with the turn it points at and the
text that shows it. The four patterns of the PTE paper (Sec. 5), then three more:

``confirmatory``         the final answer (``answer``, else the one extracted from the last turn) or
                         the ground truth already stands in the assistant's text (reasoning
                         included) before its first call of a computation tool (``compute_tools``,
                         by default any tool of the code family, :func:`tool_family`): the tool
                         only confirms. Numbers match as number tokens (``42`` is not found
                         in ``142`` or ``4.2``; ``1,000`` is ``1000``); other answers as normalised
                         whole words, formulas as the same characters with any spacing. Short
                         answers (``2``) make this lenient: the evidence shows the context.
``tool_mixing``          calls from more than one toolset (``toolsets`` maps tool -> set; a tool
                         not listed goes by its family: search and reading tools -> ``web``, code
                         and calculators -> ``compute``, as both do computation; a tool of no
                         family is a set of its own). Calls that failed to parse or name no given
                         tool do not count.
``lack_of_tool_priors``  a call that failed in the tool or returned nothing: ``ToolCall.error`` a
                         tool error (timeout, memory, killed, exception, tool_error, empty_output,
                         or any other kind that is not a format failure),
                         events ``tool_error`` / ``empty_output``, or, in logs without pte_rl's
                         ``error`` field, an output that printed nothing or raised, read through
                         its wrapper (plain text, ``stdout:``/``stderr:`` sections, JSON with
                         ``stdout``/``output``/``error``/``exit_code`` keys: pte_rl.patterns.outputs).
``format_collapse``      a call outside the protocol: events ``bad_json``, ``unknown_tool``,
                         ``bad_arguments``, ``code_block``, ``plain_text_call`` (or ``ToolCall.error``
                         one of them), and the same read from the raw text when no event says so:
                         a ``<tool_call>`` whose JSON does not parse (truncated), a call naming a
                         tool not in ``tools``, arguments that break its JSON schema (jsonschema),
                         and, in a turn without calls, a fenced ```python block (when a code tool
                         is available) or ``name(arg=...)`` / ``{"name": ...}`` text.
``repeated_calls``       the same call twice: same name and same canonical arguments (JSON with
                         sorted keys).
``overlong_responses``   a tool response over ``overlong_tokens`` tokens, or one cut to the budget
                         (a ``truncated_output`` event or ``ToolCall.error``).
``front_loading``        share = decode tokens up to and including the turn of the first call /
                         all decode tokens; flagged when share > ``front_loading_share`` and those
                         tokens number at least ``front_loading_min_tokens``. No call: no share.

Per batch, :func:`pattern_rates` gives for each pattern p (keys namespaced for W&B)::

    patterns/<p>_rate             = flagged(p) / N
    patterns/<p>_cost_multiplier  = mean PTE(flagged with p) / mean PTE(pattern-free)

as in the paper's Table 7; *pattern-free* trajectories carry none of the enabled patterns. The
multiplier is NaN when either side is empty (no flagged trajectory, or none pattern-free, or a
pattern-free mean of 0): "no comparison in this batch", shown as a gap in W&B and as ``null`` in
JSON. PTE comes from :func:`pte_rl.pricing.cost.pte_batch`. No torch, no TRL.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pte_rl.patterns.base import (
    DEFAULT_COMPUTE_TOOLS,
    DEFAULT_CONFIG,
    DEFAULT_TOOLSETS,
    FORMAT_KINDS,
    PATTERNS,
    Flag,
    PatternConfig,
    is_compute_tool,
    tool_family,
    tool_to_set,
    toolset_of,
    turn_texts,
)
from pte_rl.patterns.detectors import (
    canonical_arguments,
    confirmatory,
    front_loading,
    front_loading_share,
    lack_of_tool_priors,
    overlong_responses,
    repeated_calls,
    tool_mixing,
)
from pte_rl.patterns.format import format_collapse
from pte_rl.patterns.outputs import ToolOutput, read_output
from pte_rl.pricing.cost import Attention, CachePolicy, CostModel, pte_batch
from pte_rl.pricing.trajectory import Trajectory

__all__ = [
    "DEFAULT_COMPUTE_TOOLS",
    "DEFAULT_TOOLSETS",
    "DETECTORS",
    "FORMAT_KINDS",
    "PATTERNS",
    "Flag",
    "PatternConfig",
    "ToolOutput",
    "canonical_arguments",
    "confirmatory",
    "detect",
    "format_collapse",
    "front_loading",
    "front_loading_share",
    "is_compute_tool",
    "lack_of_tool_priors",
    "overlong_responses",
    "pattern_rates",
    "read_output",
    "repeated_calls",
    "tool_family",
    "tool_mixing",
    "tool_to_set",
    "toolset_of",
    "turn_texts",
]

DETECTORS = {
    "confirmatory": confirmatory,
    "tool_mixing": tool_mixing,
    "lack_of_tool_priors": lack_of_tool_priors,
    "format_collapse": format_collapse,
    "repeated_calls": repeated_calls,
    "overlong_responses": overlong_responses,
    "front_loading": front_loading,
}


def detect(trajectory: Trajectory, config: PatternConfig | None = None) -> list[Flag]:
    """Every enabled pattern's flags for one trajectory, in :data:`PATTERNS` order."""
    config = config or DEFAULT_CONFIG
    return [flag for name in config.enabled for flag in DETECTORS[name](trajectory, config)]


def pattern_rates(
    trajectories: Sequence[Trajectory],
    gamma: float | CostModel | None,
    *,
    config: PatternConfig | None = None,
    cache: CachePolicy = "evict",
    attention: Attention = "paper",
    delta: float = 0.0,
    flags: Sequence[Sequence[Flag]] | None = None,
    toolsets: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Each pattern's rate and cost multiplier over a batch (module docstring), W&B-namespaced.

    Also ``patterns/any_rate`` (share with at least one pattern) and
    ``patterns/front_loading_share_mean`` (mean share over trajectories that call a tool). With
    ``gamma=None`` only rates are given. ``flags`` reuses :func:`detect` results; ``toolsets``
    replaces ``config.toolsets`` (either form :func:`tool_to_set` takes). Empty batch: NaN.
    """
    config = config or DEFAULT_CONFIG
    if toolsets is not None:
        config = dataclasses.replace(config, toolsets=toolsets)
    flags = [detect(t, config) for t in trajectories] if flags is None else flags
    if len(flags) != len(trajectories):
        raise ValueError(f"flags: expected one list per trajectory ({len(trajectories)}), got {len(flags)}")
    count = len(trajectories)
    found = [{f.pattern for f in fs if f.pattern in config.enabled} for fs in flags]
    free = [i for i in range(count) if not found[i]]
    totals = (
        pte_batch(trajectories, gamma, cache=cache, attention=attention, delta=delta).total
        if gamma is not None and count
        else None
    )
    nan = float("nan")
    out: dict[str, float] = {}
    for name in config.enabled:
        flagged = [i for i in range(count) if name in found[i]]
        out[f"patterns/{name}_rate"] = len(flagged) / count if count else nan
        if totals is not None:
            free_mean = float(totals[free].mean()) if free else 0.0
            out[f"patterns/{name}_cost_multiplier"] = (
                float(totals[flagged].mean()) / free_mean if flagged and free_mean > 0 else nan
            )
        elif gamma is not None:
            out[f"patterns/{name}_cost_multiplier"] = nan
    out["patterns/any_rate"] = (count - len(free)) / count if count else nan
    shares = [s[0] for s in map(front_loading_share, trajectories) if s is not None]
    out["patterns/front_loading_share_mean"] = math.fsum(shares) / len(shares) if shares else nan
    return out

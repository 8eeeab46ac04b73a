"""PTE accounting: Prefill Token Equivalents, the paper's cost of a tool-integrated trajectory.

    PTE = sum_i ( prefill_i + gamma * context_i * decode_i )            (paper, Eq. 1)

``context_i`` (C_i) is the context before turn i decodes and ``decode_i`` (D_decode_i) the tokens it
generates. What counts as ``prefill_i`` depends on the cache policy:

    evict     prefill_i = context_i                      the paper's: the KV cache is evicted during
                                                         every tool pause, so the whole context is
                                                         prefilled again
    reuse     prefill_0 = context_0,                     an ideal prefix cache: only tokens appended
              prefill_i = max(0, context_i - context_{i-1} - decode_{i-1})   since the last turn
    measured  prefill_i = context_i - min(cached_i, context_i)   what the engine reported it served from
                                                         cache is not prefilled again (unknown -> 0)

and the decode term on the attention mode:

    paper     decode_part_i = gamma * context_i * decode_i
    exact     decode_part_i = gamma * (context_i * decode_i + decode_i * (decode_i - 1) / 2)
              (each decoded token also reads the tokens generated before it in the same turn)

Optional, off by default: ``delta * decode_i`` added to the decode part, a per-decoded-token constant
in prefill-token units measured by ``pte-rl calibrate`` (the weight read of each decode step that a
low-concurrency server does not amortise; the paper's PTE has no such term).

This is the only PTE code in pte_rl; everything else calls it. No torch, no TRL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pte_rl.errors import InputError
from pte_rl.pricing.trajectory import Trajectory, Turn

CachePolicy = Literal["evict", "reuse", "measured"]
Attention = Literal["paper", "exact"]
CACHE_POLICIES = ("evict", "reuse", "measured")
ATTENTION_MODES = ("paper", "exact")


@dataclass(frozen=True, slots=True)
class CostModel:
    """How a trajectory is priced: gamma, the cache policy, the decode-attention mode, delta."""

    gamma: float
    cache: CachePolicy = "evict"
    attention: Attention = "paper"
    delta: float = 0.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.gamma) or self.gamma < 0:
            raise InputError(f"gamma: expected a finite non-negative number, got {self.gamma!r}")
        if not np.isfinite(self.delta) or self.delta < 0:
            raise InputError(f"delta: expected a finite non-negative number, got {self.delta!r}")
        if self.cache not in CACHE_POLICIES:
            raise InputError(f"cache: expected one of {CACHE_POLICIES}, got {self.cache!r}")
        if self.attention not in ATTENTION_MODES:
            raise InputError(f"attention: expected one of {ATTENTION_MODES}, got {self.attention!r}")


@dataclass(frozen=True, slots=True)
class TurnCost:
    """One turn's price: ``prefill`` + ``decode`` = ``total`` (in prefill-token equivalents)."""

    prefill: float
    decode: float

    @property
    def total(self) -> float:
        return self.prefill + self.decode


@dataclass(frozen=True, slots=True)
class PTEBreakdown:
    """A trajectory's PTE, its prefill and decode parts, and the per-turn breakdown."""

    total: float
    prefill: float
    decode: float
    turns: tuple[TurnCost, ...]

    @property
    def prefill_share(self) -> float:
        return self.prefill / self.total if self.total > 0 else 0.0


def _model(gamma: float | CostModel, cache: CachePolicy, attention: Attention, delta: float) -> CostModel:
    if isinstance(gamma, CostModel):
        return gamma
    return CostModel(gamma=float(gamma), cache=cache, attention=attention, delta=float(delta))


def turn_costs(
    turns: Sequence[Turn],
    gamma: float | CostModel,
    *,
    cache: CachePolicy = "evict",
    attention: Attention = "paper",
    delta: float = 0.0,
) -> list[TurnCost]:
    """Per-turn prefill and decode parts; see the module docstring for the formulas."""
    model = _model(gamma, cache, attention, delta)
    costs = []
    previous_end = 0  # context_{i-1} + decode_{i-1}: what an ideal prefix cache holds
    for index, turn in enumerate(turns):
        context, decode = turn.context_tokens, turn.decode_tokens
        if model.cache == "evict":
            prefill = context
        elif model.cache == "reuse":
            prefill = context if index == 0 else max(0, context - previous_end)
        else:
            prefill = context - min(turn.cached_tokens or 0, context)
        attended: float = context * decode
        if model.attention == "exact":
            attended += decode * (decode - 1) / 2
        costs.append(TurnCost(prefill=float(prefill), decode=model.gamma * attended + model.delta * decode))
        previous_end = context + decode
    return costs


def pte(
    trajectory: Trajectory | Sequence[Turn],
    gamma: float | CostModel,
    *,
    cache: CachePolicy = "evict",
    attention: Attention = "paper",
    delta: float = 0.0,
) -> PTEBreakdown:
    """PTE of one trajectory (or a list of turns), with its prefill/decode parts and per-turn costs.

    >>> from pte_rl.pricing.trajectory import Turn
    >>> turns = [Turn(context_tokens=100, decode_tokens=20), Turn(context_tokens=150, decode_tokens=10)]
    >>> pte(turns, gamma=0.01).total   # (100 + 0.01*100*20) + (150 + 0.01*150*10)
    285.0
    >>> pte(turns, gamma=0.01, cache="reuse").prefill   # 100 + (150 - 120)
    130.0
    """
    turns = trajectory.turns if isinstance(trajectory, Trajectory) else trajectory
    costs = turn_costs(turns, gamma, cache=cache, attention=attention, delta=delta)
    prefill = sum(c.prefill for c in costs)
    decode = sum(c.decode for c in costs)
    return PTEBreakdown(total=prefill + decode, prefill=prefill, decode=decode, turns=tuple(costs))


@dataclass(slots=True)
class TurnTable:
    """A batch of trajectories as flat per-turn arrays (struct of arrays), for vectorised pricing.

    ``trajectory`` maps each row to its trajectory index; rows of one trajectory are contiguous and
    in turn order. ``cached`` is -1 where unknown.
    """

    trajectory: np.ndarray
    context: np.ndarray
    decode: np.ndarray
    cached: np.ndarray
    num_trajectories: int

    @classmethod
    def from_trajectories(cls, trajectories: Sequence[Trajectory | Sequence[Turn]]) -> TurnTable:
        rows = [
            (i, t.context_tokens, t.decode_tokens, -1 if t.cached_tokens is None else t.cached_tokens)
            for i, traj in enumerate(trajectories)
            for t in (traj.turns if isinstance(traj, Trajectory) else traj)
        ]
        data = np.array(rows, dtype=np.int64).reshape(-1, 4)
        return cls(data[:, 0], data[:, 1], data[:, 2], data[:, 3], len(trajectories))

    @classmethod
    def from_arrays(
        cls, trajectory: np.ndarray, context: np.ndarray, decode: np.ndarray, cached: np.ndarray | None = None
    ) -> TurnTable:
        trajectory = np.asarray(trajectory, dtype=np.int64)
        context = np.asarray(context, dtype=np.int64)
        decode = np.asarray(decode, dtype=np.int64)
        cached = np.full_like(context, -1) if cached is None else np.asarray(cached, dtype=np.int64)
        if (context < 0).any() or (decode < 0).any():
            raise InputError("context and decode token counts must be non-negative")
        if len(trajectory) and (np.diff(trajectory) < 0).any():
            raise InputError("rows of one trajectory must be contiguous and trajectories in order")
        count = int(trajectory.max()) + 1 if len(trajectory) else 0
        return cls(trajectory, context, decode, cached, count)


@dataclass(slots=True)
class BatchPTE:
    """Vectorised result: per-trajectory totals and parts, and per-turn parts (rows of the TurnTable)."""

    total: np.ndarray
    prefill: np.ndarray
    decode: np.ndarray
    turn_prefill: np.ndarray
    turn_decode: np.ndarray


def pte_batch(
    batch: TurnTable | Sequence[Trajectory | Sequence[Turn]],
    gamma: float | CostModel,
    *,
    cache: CachePolicy = "evict",
    attention: Attention = "paper",
    delta: float = 0.0,
) -> BatchPTE:
    """PTE of many trajectories at once; equal to :func:`pte` on each (same formulas, numpy)."""
    model = _model(gamma, cache, attention, delta)
    table = batch if isinstance(batch, TurnTable) else TurnTable.from_trajectories(batch)
    context = table.context.astype(np.float64)
    decode = table.decode.astype(np.float64)
    if model.cache == "evict":
        prefill = context
    elif model.cache == "reuse":
        first = np.ones(len(context), dtype=bool)
        first[1:] = table.trajectory[1:] != table.trajectory[:-1]
        previous_end = np.zeros_like(context)
        previous_end[1:] = context[:-1] + decode[:-1]
        prefill = np.where(first, context, np.maximum(0.0, context - previous_end))
    else:
        cached = np.clip(table.cached, 0, None).astype(np.float64)
        prefill = context - np.minimum(cached, context)
    attended = context * decode
    if model.attention == "exact":
        attended = attended + decode * (decode - 1) / 2
    decode_part = model.gamma * attended + model.delta * decode
    n = table.num_trajectories
    prefill_sum = np.bincount(table.trajectory, weights=prefill, minlength=n)
    decode_sum = np.bincount(table.trajectory, weights=decode_part, minlength=n)
    return BatchPTE(prefill_sum + decode_sum, prefill_sum, decode_sum, prefill, decode_part)


def token_totals(trajectory: Trajectory | Sequence[Turn]) -> dict[str, int]:
    """Token counts that naive cost metrics use, for comparison with PTE.

    ``generated_tokens`` = sum decode_i; ``total_tokens`` = sum (context_i + decode_i), every turn's
    input counted in full as an API without caching bills it; ``input_tokens`` = sum context_i.
    """
    turns = trajectory.turns if isinstance(trajectory, Trajectory) else trajectory
    generated = sum(t.decode_tokens for t in turns)
    inputs = sum(t.context_tokens for t in turns)
    return {"generated_tokens": generated, "input_tokens": inputs, "total_tokens": generated + inputs}

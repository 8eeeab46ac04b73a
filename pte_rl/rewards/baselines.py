"""The naive efficiency rewards that the PTE penalty is ablated against, in TRL's contract.

Each counts something simpler than PTE (generated tokens, completion length, tool calls). Group
statistics gather the whole GRPO group across processes, as for the PTE penalty.

Kimi k1.5 length reward (Kimi Team, arXiv 2501.12599, Sec. 2.3.3), over a group with lengths in
generated tokens (``decode_tokens`` summed over turns):

    lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len)           (0 when max_len == min_len)
    r_i = lambda_i if correct_i else min(0, lambda_i)                      in [-0.5, 0.5]

DAPO overlong reward shaping (Yu et al., arXiv 2503.14476, Eq. 13), ``L = len(completion_ids)`` by
default (what ``max_completion_length`` bounds):

    r_i = 0                                  L <= L_max - L_cache
    r_i = ((L_max - L_cache) - L) / L_cache   L_max - L_cache < L <= L_max
    r_i = -1                                 L > L_max

OTC-GRPO's tool-call reward: :mod:`pte_rl.rewards.otc`.

Linear penalties: ``r_i = -g_i * min(cap, coef * x_i)`` with ``x`` generated tokens
(:class:`LinearTokenPenalty`) or tool calls (:class:`LinearCallPenalty`); ``cap=None`` leaves it
unbounded (and the preset's ordering check then fails, as it should).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pte_rl.rewards.base import Bounds, GroupReward, Metrics, groups_of, positive
from pte_rl.rewards.normalize import GATES, gate_factors
from pte_rl.rewards.samples import Sample, mean

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pte_rl.rewards.base import CommonOptions

LENGTHS = ("generated_tokens", "completion_tokens")


class KimiLengthReward(GroupReward):
    """Kimi k1.5's length reward (formula in the module docstring).

    >>> from pte_rl.pricing.trajectory import Trajectory, Turn
    >>> shapes = [(10, True), (20, True), (30, False)]
    >>> records = [Trajectory([Turn(10, n)], correct=ok).to_dict() for n, ok in shapes]
    >>> KimiLengthReward()(completions=[[], [], []], trajectory=records, task_id=["t"] * 3)
    [0.5, 0.0, -0.5]
    """

    def __init__(
        self, *, length: str = "generated_tokens", name: str = "kimi_length", **common: Unpack[CommonOptions]
    ) -> None:
        if length not in LENGTHS:
            raise ValueError(f"length: expected one of {LENGTHS}, got {length!r}")
        self.measure = length
        super().__init__(name=name, **common)

    def score(self, samples: list[Sample]) -> tuple[list[float | None], Metrics]:
        rewards: list[float | None] = [None] * len(samples)
        for indices in groups_of(samples).values():
            lengths = [samples[i].cost for i in indices if math.isfinite(samples[i].cost)]
            if not lengths:
                continue
            low, high = min(lengths), max(lengths)
            for i in indices:
                s = samples[i]
                if s.correct is None or not math.isfinite(s.cost):
                    continue
                lam = 0.0 if high == low else 0.5 - (s.cost - low) / (high - low)
                rewards[i] = lam if s.correct >= 0.5 else min(0.0, lam)
        metrics: dict[str, float | None] = {}
        metrics[f"reward/{self.__name__}_mean"] = mean([r for r in rewards if r is not None])
        return rewards, metrics

    def bounds(self) -> Bounds:
        return (-0.5, 0.5), (-0.5, 0.0)

    def config(self) -> dict[str, Any]:
        return {"length": self.measure, **super().config()}


class DAPOOverlongReward(GroupReward):
    """DAPO's soft overlong punishment (formula in the module docstring); needs no correctness.

    >>> DAPOOverlongReward(max_tokens=100, cache_tokens=20)(completions=["", "", ""],
    ...                                                     completion_ids=[[1] * 80, [1] * 90, [1] * 101])
    [0.0, -0.5, -1.0]
    """

    def __init__(
        self,
        *,
        max_tokens: int = 1024,
        cache_tokens: int = 256,
        length: str = "completion_tokens",
        name: str = "dapo_overlong",
        **common: Unpack[CommonOptions],
    ) -> None:
        if length not in LENGTHS:
            raise ValueError(f"length: expected one of {LENGTHS}, got {length!r}")
        self.max_tokens = positive("max_tokens", max_tokens)
        self.cache_tokens = positive("cache_tokens", cache_tokens, allow_zero=True)
        if self.cache_tokens > self.max_tokens:
            raise ValueError(f"cache_tokens ({cache_tokens}) must not exceed max_tokens ({max_tokens})")
        self.measure = length
        super().__init__(name=name, **common)

    @property
    def needs_correct(self) -> bool:
        return False

    def score(self, samples: list[Sample]) -> tuple[list[float | None], Metrics]:
        soft_start = self.max_tokens - self.cache_tokens
        rewards: list[float | None] = []
        for s in samples:
            length = s.cost
            if not math.isfinite(length):
                rewards.append(None)
            elif length <= soft_start:
                rewards.append(0.0)
            elif length <= self.max_tokens:
                rewards.append((soft_start - length) / self.cache_tokens)
            else:
                rewards.append(-1.0)
        metrics: dict[str, float | None] = {}
        metrics[f"reward/{self.__name__}_mean"] = mean([r for r in rewards if r is not None])
        return rewards, metrics

    def bounds(self) -> Bounds:
        return (-1.0, 0.0), (-1.0, 0.0)

    def config(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "cache_tokens": self.cache_tokens,
            "length": self.measure,
            **super().config(),
        }


class LinearPenalty(GroupReward):
    """``-g_i * min(cap, coef * x_i)``: the plain per-token or per-call penalty."""

    def __init__(
        self,
        cost: str,
        *,
        coef: float,
        cap: float | None = None,
        gate: str = "correct",
        name: str | None = None,
        **common: Unpack[CommonOptions],
    ) -> None:
        if cost not in ("generated_tokens", "tool_calls", "total_tokens", "completion_tokens"):
            raise ValueError(
                f"cost: expected generated_tokens, tool_calls, total_tokens or completion_tokens, "
                f"got {cost!r}"
            )
        if gate not in GATES:
            raise ValueError(f"gate: expected one of {GATES}, got {gate!r}")
        self.coef = positive("coef", coef)
        self.cap = None if cap is None else positive("cap", cap)
        self.gate = gate
        self.measure = cost
        super().__init__(
            name=name or f"linear_{'call' if cost == 'tool_calls' else 'token'}_penalty", **common
        )

    @property
    def needs_correct(self) -> bool:
        return self.gate in ("correct", "solved")

    def score(self, samples: list[Sample]) -> tuple[list[float | None], Metrics]:
        rewards: list[float | None] = []
        factors = gate_factors([s.correct for s in samples], self.gate, group_ids=[s.group for s in samples])
        for s, factor in zip(samples, factors, strict=True):
            if factor == 0.0:
                rewards.append(0.0)
            elif math.isnan(factor) or not math.isfinite(s.cost):
                rewards.append(None)
            else:
                amount = self.coef * s.cost
                rewards.append(0.0 - factor * (amount if self.cap is None else min(self.cap, amount)))
        metrics: dict[str, float | None] = {}
        metrics[f"reward/{self.__name__}_mean"] = mean([r for r in rewards if r is not None])
        return rewards, metrics

    def bounds(self) -> Bounds:
        low = -math.inf if self.cap is None else -self.cap
        return (low, 0.0), ((low if self.gate == "all" else 0.0), 0.0)

    def config(self) -> dict[str, Any]:
        return {
            "cost": self.measure,
            "coef": self.coef,
            "cap": self.cap,
            "gate": self.gate,
            **super().config(),
        }


class LinearTokenPenalty(LinearPenalty):
    """``-g_i * min(cap, coef * generated_tokens_i)``.

    >>> from pte_rl.pricing.trajectory import Trajectory, Turn
    >>> records = [Trajectory([Turn(10, n)], task_id="t", correct=ok).to_dict() for n, ok in ((300, True), (2000, True),
    ...            (300, False))]
    >>> LinearTokenPenalty()(completions=[[], [], []], trajectory=records)   # 0.001 * 300; capped at 1; ungated
    [-0.3, -1.0, 0.0]
    """

    def __init__(
        self,
        *,
        coef: float = 0.001,
        cap: float | None = 1.0,
        gate: str = "correct",
        name: str = "linear_token_penalty",
        **common: Unpack[CommonOptions],
    ) -> None:
        super().__init__("generated_tokens", coef=coef, cap=cap, gate=gate, name=name, **common)


class LinearCallPenalty(LinearPenalty):
    """``-g_i * min(cap, coef * tool_calls_i)``."""

    def __init__(
        self,
        *,
        coef: float = 0.1,
        cap: float | None = 1.0,
        gate: str = "correct",
        name: str = "linear_call_penalty",
        **common: Unpack[CommonOptions],
    ) -> None:
        super().__init__("tool_calls", coef=coef, cap=cap, gate=gate, name=name, **common)

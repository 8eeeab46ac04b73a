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

OTC-GRPO tool reward (Wang et al., "OTC: Optimal Tool Calls via Reinforcement Learning", arXiv
2504.14870, Sec. 3): with ``m`` the calls of a rollout and ``n`` the fewest calls among its group's
correct rollouts,

    f(m, n) = 0 if m = n = 0;  m if n = 0;  2nm / (m + n) otherwise
    r_tool  = 1                         if f(m, n) = n = 0
              cos(m * pi / (2m + c))    if n = 0            (c: the smoothing constant ``smooth``)
              sin(f(m, n) * pi / (2n))  otherwise

so r_tool = 1 at m = n and decays towards 0 as m grows. The paper's reward is ``alpha * r_tool *
r_correct`` (``form="paper"``); the default ``form="penalty"`` returns ``-c_i * (1 - r_tool_i)`` in
[-1, 0], which with the correctness reward at weight 1 and this one at weight ``w`` sums to
``c_i * (1 - w + w * r_tool_i)``: the paper's form at ``w = 1``, and with ``w < 1`` the same success
gating and ordering guarantee as the PTE penalty. With ``gate="solved"`` a group that holds an
incorrect rollout gets ``r_tool = 1`` (correctness alone), as the PTE penalty's gate of that name.

Linear penalties: ``r_i = -g_i * min(cap, coef * x_i)`` with ``x`` generated tokens
(``linear_token_penalty``) or tool calls (``linear_call_penalty``); ``cap=None`` leaves it unbounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pte_rl.rewards.base import GroupReward, Sample, mean
from pte_rl.rewards.normalize import GATES, gate_factors, solved_groups

LENGTHS = ("generated_tokens", "completion_tokens")


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (value < 0 if allow_zero else value <= 0)
    ):
        raise ValueError(
            f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {value!r}"
        )
    return float(value)


def _groups(samples: list[Sample]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    return groups


class KimiLengthReward(GroupReward):
    """Kimi k1.5's length reward (formula in the module docstring).

    >>> from pte_rl.pricing.trajectory import Trajectory, Turn
    >>> shapes = [(10, True), (20, True), (30, False)]
    >>> records = [Trajectory([Turn(10, n)], correct=ok).to_dict() for n, ok in shapes]
    >>> kimi_length_reward()(completions=[[], [], []], trajectory=records, task_id=["t"] * 3)
    [0.5, 0.0, -0.5]
    """

    def __init__(self, length: str = "generated_tokens", name: str = "kimi_length", **common: Any):
        if length not in LENGTHS:
            raise ValueError(f"length: expected one of {LENGTHS}, got {length!r}")
        self.measure = length
        super().__init__(name=name, **common)

    def score(self, samples: list[Sample]) -> tuple[list[float | None], dict[str, float | None]]:
        rewards: list[float | None] = [None] * len(samples)
        for indices in _groups(samples).values():
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

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (-0.5, 0.5), (-0.5, 0.0)

    def config(self) -> dict[str, Any]:
        return {"length": self.measure, **super().config()}


class DAPOOverlongReward(GroupReward):
    """DAPO's soft overlong punishment (formula in the module docstring); needs no correctness.

    >>> dapo_overlong_reward(max_tokens=100, cache_tokens=20)(completions=["", "", ""],
    ...                                                       completion_ids=[[1] * 80, [1] * 90, [1] * 101])
    [0.0, -0.5, -1.0]
    """

    def __init__(
        self,
        max_tokens: int = 1024,
        cache_tokens: int = 256,
        length: str = "completion_tokens",
        name: str = "dapo_overlong",
        **common: Any,
    ):
        if length not in LENGTHS:
            raise ValueError(f"length: expected one of {LENGTHS}, got {length!r}")
        self.max_tokens = _positive("max_tokens", max_tokens)
        self.cache_tokens = _positive("cache_tokens", cache_tokens, allow_zero=True)
        if self.cache_tokens > self.max_tokens:
            raise ValueError(f"cache_tokens ({cache_tokens}) must not exceed max_tokens ({max_tokens})")
        self.measure = length
        super().__init__(name=name, **common)

    @property
    def needs_correct(self) -> bool:
        return False

    def score(self, samples: list[Sample]) -> tuple[list[float | None], dict[str, float | None]]:
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

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (-1.0, 0.0), (-1.0, 0.0)

    def config(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "cache_tokens": self.cache_tokens,
            "length": self.measure,
            **super().config(),
        }


def otc_tool_score(calls: float, optimal: float, smooth: float) -> float:
    """OTC-GRPO's r_tool for ``calls`` = m and ``optimal`` = n (module docstring).

    >>> otc_tool_score(2, 2, 1.0), round(otc_tool_score(6, 2, 1.0), 6), round(otc_tool_score(1, 0, 1.0), 6)
    (1.0, 0.707107, 0.5)
    """
    m, n = float(calls), float(optimal)
    if m == 0 and n == 0:
        return 1.0
    if n == 0:
        return math.cos(m * math.pi / (2 * m + smooth))
    f = 2 * n * m / (m + n)
    return math.sin(f * math.pi / (2 * n))


class OTCToolReward(GroupReward):
    """OTC-GRPO's tool-call reward, relative to the fewest calls among the group's correct rollouts."""

    measure = "tool_calls"

    def __init__(
        self,
        smooth: float = 1.0,
        form: str = "penalty",
        alpha: float = 1.0,
        gate: str = "correct",
        name: str = "otc_tool",
        **common: Any,
    ):
        if form not in ("penalty", "paper"):
            raise ValueError(f"form: expected 'penalty' or 'paper', got {form!r}")
        if gate not in ("correct", "solved"):
            raise ValueError(f"gate: expected 'correct' or 'solved', got {gate!r}")
        self.gate = gate
        self.smooth = _positive("smooth", smooth)
        self.alpha = _positive("alpha", alpha)
        self.form = form
        super().__init__(name=name, **common)

    def score(self, samples: list[Sample]) -> tuple[list[float | None], dict[str, float | None]]:
        rewards: list[float | None] = [None] * len(samples)
        tool_scores: list[float] = []
        solved = solved_groups([s.correct for s in samples], [s.group for s in samples])
        for group, indices in _groups(samples).items():
            winners = [
                samples[i].cost
                for i in indices
                if samples[i].correct is not None
                and samples[i].correct >= 0.5
                and math.isfinite(samples[i].cost)
            ]
            optimal = min(winners) if winners else None
            for i in indices:
                s = samples[i]
                if s.correct is None:
                    continue
                if s.correct < 0.5:
                    rewards[i] = 0.0
                    continue
                if not math.isfinite(s.cost) or optimal is None:
                    continue
                r_tool = otc_tool_score(s.cost, optimal, self.smooth)
                tool_scores.append(r_tool)
                if self.gate == "solved" and group not in solved:
                    r_tool = 1.0  # a group with a failure is trained on correctness alone
                rewards[i] = (
                    self.alpha * r_tool * s.correct
                    if self.form == "paper"
                    else 0.0 - (1.0 - r_tool) * s.correct
                )
        metrics: dict[str, float | None] = {}
        metrics[f"reward/{self.__name__}_score_mean"] = mean(tool_scores)
        metrics[f"reward/{self.__name__}_mean"] = mean([r for r in rewards if r is not None])
        return rewards, metrics

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        # paper form: r_tool in (0, 1], its infimum 0 is never reached but cannot be certified either
        return ((0.0, self.alpha), (0.0, 0.0)) if self.form == "paper" else ((-1.0, 0.0), (0.0, 0.0))

    def config(self) -> dict[str, Any]:
        return {
            "smooth": self.smooth,
            "form": self.form,
            "alpha": self.alpha,
            "gate": self.gate,
            **super().config(),
        }


class LinearPenalty(GroupReward):
    """``-g_i * min(cap, coef * x_i)``: the plain per-token or per-call penalty."""

    def __init__(
        self,
        cost: str,
        coef: float,
        cap: float | None = None,
        gate: str = "correct",
        name: str | None = None,
        **common: Any,
    ):
        if cost not in ("generated_tokens", "tool_calls", "total_tokens", "completion_tokens"):
            raise ValueError(
                f"cost: expected generated_tokens, tool_calls, total_tokens or completion_tokens, "
                f"got {cost!r}"
            )
        if gate not in GATES:
            raise ValueError(f"gate: expected one of {GATES}, got {gate!r}")
        self.coef = _positive("coef", coef)
        self.cap = None if cap is None else _positive("cap", cap)
        self.gate = gate
        self.measure = cost
        super().__init__(
            name=name or f"linear_{'call' if cost == 'tool_calls' else 'token'}_penalty", **common
        )

    @property
    def needs_correct(self) -> bool:
        return self.gate in ("correct", "solved")

    def score(self, samples: list[Sample]) -> tuple[list[float | None], dict[str, float | None]]:
        rewards: list[float | None] = []
        factors = gate_factors([s.correct for s in samples], self.gate, group_ids=[s.group for s in samples])
        for s, factor in zip(samples, factors):
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

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
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


# ---------------------------------------------------------------- factories


def kimi_length_reward(
    *,
    length: str = "generated_tokens",
    checker: Callable | str | None = None,
    checker_options: dict | None = None,
    tokenizer: Any = None,
    tools: list | None = None,
    group_by: str = "auto",
    group_size: int | None = None,
    name: str = "kimi_length",
) -> KimiLengthReward:
    """Kimi k1.5's group length reward (see :class:`KimiLengthReward`)."""
    return KimiLengthReward(
        length=length,
        name=name,
        checker=checker,
        checker_options=checker_options,
        tokenizer=tokenizer,
        tools=tools,
        group_by=group_by,
        group_size=group_size,
    )


def dapo_overlong_reward(
    *,
    max_tokens: int = 1024,
    cache_tokens: int = 256,
    length: str = "completion_tokens",
    tokenizer: Any = None,
    tools: list | None = None,
    name: str = "dapo_overlong",
) -> DAPOOverlongReward:
    """DAPO's soft overlong punishment with ``L_max = max_tokens`` and ``L_cache = cache_tokens``."""
    return DAPOOverlongReward(
        max_tokens=max_tokens,
        cache_tokens=cache_tokens,
        length=length,
        name=name,
        tokenizer=tokenizer,
        tools=tools,
    )


def otc_tool_reward(
    *,
    smooth: float = 1.0,
    form: str = "penalty",
    alpha: float = 1.0,
    gate: str = "correct",
    checker: Callable | str | None = None,
    checker_options: dict | None = None,
    tokenizer: Any = None,
    tools: list | None = None,
    group_by: str = "auto",
    group_size: int | None = None,
    name: str = "otc_tool",
) -> OTCToolReward:
    """OTC-GRPO's tool-call reward (arXiv 2504.14870; see :class:`OTCToolReward`).

    ``gate="solved"`` scores tool calls only in groups whose every rollout is correct (``r_tool = 1``
    elsewhere), as the PTE penalty's gate of that name.
    """
    return OTCToolReward(
        smooth=smooth,
        form=form,
        alpha=alpha,
        gate=gate,
        name=name,
        checker=checker,
        checker_options=checker_options,
        tokenizer=tokenizer,
        tools=tools,
        group_by=group_by,
        group_size=group_size,
    )


def linear_token_penalty(
    *,
    coef: float = 0.001,
    cap: float | None = 1.0,
    gate: str = "correct",
    checker: Callable | str | None = None,
    checker_options: dict | None = None,
    tokenizer: Any = None,
    tools: list | None = None,
    name: str = "linear_token_penalty",
) -> LinearPenalty:
    """``-g_i * min(cap, coef * generated_tokens_i)``."""
    return LinearPenalty(
        "generated_tokens",
        coef,
        cap,
        gate,
        name=name,
        checker=checker,
        checker_options=checker_options,
        tokenizer=tokenizer,
        tools=tools,
    )


def linear_call_penalty(
    *,
    coef: float = 0.1,
    cap: float | None = 1.0,
    gate: str = "correct",
    checker: Callable | str | None = None,
    checker_options: dict | None = None,
    tokenizer: Any = None,
    tools: list | None = None,
    name: str = "linear_call_penalty",
) -> LinearPenalty:
    """``-g_i * min(cap, coef * tool_calls_i)``."""
    return LinearPenalty(
        "tool_calls",
        coef,
        cap,
        gate,
        name=name,
        checker=checker,
        checker_options=checker_options,
        tokenizer=tokenizer,
        tools=tools,
    )

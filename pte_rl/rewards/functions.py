"""The correctness reward and the normalised cost penalty (PTE by default), in TRL's contract.

A preset combines them through TRL's reward weights (``multi_objective_aggregation=
"sum_then_normalize"``, TRL's default): with the correctness reward at weight 1 and the penalty at
weight ``w``, the summed reward is exactly

    r_i = c_i - w * g_i * penalty_i           (combine="additive")
    r_i = c_i * (1 - w * penalty_i)           (combine="multiplicative")

where ``penalty_i`` in [0, 1] is a normalised cost (:func:`pte_rl.rewards.normalized_cost`) and
``g_i`` the gate (see :mod:`pte_rl.rewards.normalize`). The penalty reward itself returns
``-g_i * penalty_i`` (or ``-c_i * penalty_i``), in [-1, 0].

Log keys (``log_metric``; batch-wide values, the same on every rank):
  correctness:  reward/correctness_unscored, reward/correctness_empty, reward/correctness_unfinished
  pte_penalty:  reward/pte_penalty_mean (mean penalty term over scored samples),
                reward/pte_penalty_unscored, reward/pte_penalty_budget_mean (budget methods)
Completions table (``log_extra``): a column ``<name>:<measure>`` (``pte_penalty:pte``) with each cost.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pte_rl.pricing.cost import CostModel
from pte_rl.rewards.base import Bounds, GroupReward, Metrics
from pte_rl.rewards.normalize import (
    COMBINES,
    GATES,
    GROUP_METHODS,
    METHODS,
    BudgetReference,
    normalized_cost,
    penalty_term,
)
from pte_rl.rewards.records import MEASURES
from pte_rl.rewards.samples import Sample, mean

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pte_rl.rewards.base import CommonOptions

DEFAULT_NAMES = {
    "pte": "pte_penalty",
    "generated_tokens": "token_penalty",
    "total_tokens": "total_token_penalty",
    "tool_calls": "call_penalty",
    "completion_tokens": "completion_token_penalty",
}


class CorrectnessReward(GroupReward):
    """``r_i = 1.0`` if the completion is correct, ``0.0`` if not, ``None`` if it cannot be graded.

    Correctness comes from the rollout record's ``correct`` when set, else from ``checker(final
    assistant text, ground_truth)``; unfinished and empty completions are incorrect; a missing ground
    truth leaves the sample unscored (see :mod:`pte_rl.rewards.base`).

    ``checker`` is a callable ``(answer_text, ground_truth) -> bool | None`` (an environment's
    ``check_answer``) or a name for :func:`pte_rl.checkers.get_checker` (``math``, ``qa``, ``number``).

    >>> reward = CorrectnessReward(checker=lambda text, truth: text.strip() == truth)
    >>> say = lambda text: [{"role": "assistant", "content": text}]
    >>> reward(completions=[say("42"), say("41"), say(""), say("42")], ground_truth=["42", "42", "42", None])
    [1.0, 0.0, 0.0, None]
    """

    def __init__(self, *, name: str = "correctness", **common: Unpack[CommonOptions]) -> None:
        super().__init__(name=name, **common)

    def score(self, samples: list[Sample]) -> tuple[list[float | None], Metrics]:
        name = self.__name__
        metrics: Metrics = {
            f"reward/{name}_empty": float(sum(s.status == "empty" for s in samples)),
            f"reward/{name}_unfinished": float(sum(s.status == "unfinished" for s in samples)),
        }
        return [s.correct for s in samples], metrics

    def bounds(self) -> Bounds:
        return (1.0, 1.0), (0.0, 0.0)


class CostPenalty(GroupReward):
    """``-g_i * penalty_i`` with ``penalty_i = normalized_cost(cost, ...)[i]`` in [0, 1].

    The same normalised, gated penalty over any cost measure (``token_penalty``, ``call_penalty``,
    ...): the ablation baseline of :class:`PTEPenalty`, identical but for the measure. ``cost`` picks the measure
    (``pte``, ``generated_tokens``, ``total_tokens``, ``tool_calls``, ``completion_tokens``), so the same
    normalisation and gating can price PTE or a naive count: an ablation changes the measure and nothing
    else. Group statistics see the whole GRPO group across
    processes. ``budget="ema"`` keeps a :class:`BudgetReference` (per-task EMA of successful costs).
    ``cost_model`` (or the ``gamma=`` shortcut) prices ``cost="pte"`` and is ignored otherwise.

    >>> from pte_rl.pricing.trajectory import Trajectory, Turn
    >>> records = [Trajectory([Turn(100, n)], task_id="t", correct=True).to_dict() for n in (10, 30, 20)]
    >>> rewards = CostPenalty("generated_tokens")(completions=[[], [], []], trajectory=records)
    >>> [round(r, 6) for r in rewards]   # 10, 30, 20 tokens: (x - 10) / (30 - 10 + 1e-6)
    [0.0, -1.0, -0.5]
    """

    def __init__(
        self,
        cost: str = "generated_tokens",
        *,
        method: str = "group_success_minmax",
        gate: str = "correct",
        combine: str = "additive",
        among: str | None = None,
        budget: float | str | None = None,
        ema_decay: float = 0.9,
        cap: float = 10.0,
        name: str | None = None,
        cost_model: CostModel | None = None,
        gamma: float | None = None,
        **common: Unpack[CommonOptions],
    ) -> None:
        if cost not in MEASURES:
            raise ValueError(f"cost: expected one of {MEASURES}, got {cost!r}")
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if gate not in GATES:
            raise ValueError(f"gate: expected one of {GATES}, got {gate!r}")
        if combine not in COMBINES:
            raise ValueError(f"combine: expected one of {COMBINES}, got {combine!r}")
        if among is None:
            among = "all" if gate == "all" and method in ("group_rank", "group_zscore") else "correct"
        if among not in ("correct", "all") or (method == "group_success_minmax" and among != "correct"):
            raise ValueError(
                f"among: expected 'correct' (or 'all' for group_rank / group_zscore), got {among!r}"
            )
        self.reference: BudgetReference | None = None
        if method in GROUP_METHODS:
            if budget is not None:
                raise ValueError(f"budget: only used by the budget methods, not by {method!r}")
        elif budget == "ema":
            self.reference = BudgetReference(ema_decay)
        elif (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not math.isfinite(budget)
            or budget <= 0
        ):
            raise ValueError(f"budget: method {method!r} needs a positive number or 'ema', got {budget!r}")
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not math.isfinite(cap) or cap <= 0:
            raise ValueError(f"cap: expected a positive number, got {cap!r}")
        self.measure = cost
        self.method, self.gate, self.combine, self.among = method, gate, combine, among
        self.budget, self.ema_decay, self.cap = budget, float(ema_decay), float(cap)
        super().__init__(name=name or DEFAULT_NAMES[cost], cost_model=cost_model, gamma=gamma, **common)

    @property
    def needs_correct(self) -> bool:
        if self.gate == "none":
            return False
        if self.gate in ("correct", "solved") or self.combine == "multiplicative":
            return True
        return self.method in GROUP_METHODS and self.among == "correct"

    def score(self, samples: list[Sample]) -> tuple[list[float | None], Metrics]:
        costs = [s.cost for s in samples]
        correct = [s.correct for s in samples]
        metrics: Metrics = {}
        if self.gate == "none":
            return [0.0] * len(samples), metrics
        options: dict[str, Any] = {}
        if self.method in GROUP_METHODS:
            options["among"] = self.among
        else:
            if self.reference is not None:
                options.update(reference=self.reference, task_ids=[s.task for s in samples])
            else:
                options["budget"] = float(self.budget)  # type: ignore[arg-type]  # a number: checked in __init__
            if self.method == "log_budget":
                options["cap"] = self.cap
        penalty = normalized_cost(costs, correct, [s.group for s in samples], self.method, **options)
        terms = penalty_term(penalty, correct, self.gate, self.combine, [s.group for s in samples])
        rewards = [None if math.isnan(t) else 0.0 - t for t in terms]
        metrics[f"reward/{self.__name__}_mean"] = mean([t for t in terms if not math.isnan(t)])
        if self.reference is not None:
            metrics[f"reward/{self.__name__}_budget_mean"] = mean(
                [self.reference.get(task) for task in {s.task for s in samples}]
            )
        return rewards, metrics

    def bounds(self) -> Bounds:
        if self.gate == "none":
            return (0.0, 0.0), (0.0, 0.0)
        incorrect_penalised = (
            self.gate == "all"
            and self.combine == "additive"
            and (self.method not in GROUP_METHODS or self.among == "all")
        )
        return (-1.0, 0.0), ((-1.0 if incorrect_penalised else 0.0), 0.0)

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cost": self.measure, "method": self.method, "gate": self.gate, "combine": self.combine}
        if self.method in GROUP_METHODS:
            out["among"] = self.among
        else:
            out.update(budget=self.budget, ema_decay=self.ema_decay, cap=self.cap)
        return {**out, **super().config()}


class PTEPenalty(CostPenalty):
    """The normalised PTE penalty: ``-g_i * normalized_cost(PTE_i)`` (see :class:`CostPenalty`).

    PTE is :func:`pte_rl.pricing.cost.pte` under ``cost_model`` (a :class:`pte_rl.pricing.cost.CostModel`:
    gamma, cache policy, attention mode, delta; the recipe resolves it once from its ``pricing:``
    section), or under ``CostModel(gamma=gamma)`` with the ``gamma=`` shortcut.

    >>> from pte_rl.pricing.trajectory import Trajectory, Turn
    >>> records = [Trajectory([Turn(100, 10)], task_id="t", correct=True).to_dict(),
    ...            Trajectory([Turn(100, 10), Turn(200, 10)], task_id="t", correct=True).to_dict()]
    >>> PTEPenalty(gamma=0.0)(completions=[[], []], trajectory=records)   # PTE 100 and 300
    [0.0, -0.999999995]
    """

    def __init__(
        self,
        cost_model: CostModel | None = None,
        *,
        gamma: float | None = None,
        method: str = "group_success_minmax",
        gate: str = "correct",
        combine: str = "additive",
        among: str | None = None,
        budget: float | str | None = None,
        ema_decay: float = 0.9,
        cap: float = 10.0,
        name: str = "pte_penalty",
        **common: Unpack[CommonOptions],
    ) -> None:
        super().__init__(
            "pte", method=method, gate=gate, combine=combine, among=among, budget=budget, ema_decay=ema_decay,
            cap=cap, name=name, cost_model=cost_model, gamma=gamma, **common,
        )

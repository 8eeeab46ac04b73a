"""Cost normalisations, gating and the correctness/cost combination: pure functions, no torch.

A raw cost (PTE, tokens, tool calls) spans orders of magnitude between easy and hard prompts; a
penalty proportional to it would drown the correctness signal on hard prompts and vanish on easy
ones. Every normalisation here maps a cost to a *penalty in [0, 1]*, monotone non-decreasing in the
cost within a group (so, at equal correctness, more cost never earns more reward):

    group_success_minmax   rel_i = (x_i - min_S) / (max_S - min_S + 1e-6)      S = the group's correct
                           rollouts; 0 for rollouts outside S (the open-source verl `pte_grpo` form)
    group_rank             rank_i = #{j in S : x_j < x_i} / (|S| - 1)          ties share the lower rank;
                           0 when |S| < 2
    group_zscore           y = log1p(x),  z_i = (y_i - mean_S y) / std_S y,  penalty = Phi(z_i)
                           (Phi = the standard normal CDF, 0.5 at the group mean); 0 when |S| < 2 or
                           std_S y < 1e-12. log1p rather than log so that a cost of 0 (tool calls) is
                           defined; for PTE in the hundreds it equals log PTE to within 1/PTE.
    budget                 min(1, x_i / B)
    log_budget             min(1, log1p(x_i / B) / log1p(cap))                penalty 1 at x = cap * B

For the group methods S is the group's correct rollouts (``among="correct"``, the default) or all its
rollouts (``among="all"``). For the budget methods ``B`` is a fixed number (``budget=``) or a running
per-task reference (``reference=BudgetReference(decay)``): an EMA of the mean PTE of the task's
successful rollouts, updated with the current batch before it is used (so a task seen for the first
time is judged against its own successful mean). A task with no reference yet and no success in the
batch falls back to ``budget`` when given, else to the mean cost of that task's rollouts in the batch.

Gating and combination (``c_i`` in {0, 1} the correctness, ``w`` the penalty weight):

    gate "correct" (default)  g_i = c_i     only correct rollouts are penalised
    gate "all"                g_i = 1       every rollout is penalised
    gate "none"               g_i = 0       the cost is measured and logged, never penalised
    gate "solved"             g_i = c_i * s_G   s_G = 1 when every rollout of the sample's group G is
                                            graded correct, else 0: cost is priced only on prompts the
                                            policy already solves on every sample, and a group with a
                                            failure is trained on correctness alone
    additive         r_i = c_i - w * g_i * penalty_i
    multiplicative   r_i = c_i * (1 - w * penalty_i)        (gate "none" -> r_i = c_i)

With every penalty in [0, 1] and 0 <= w < 1, a correct rollout earns r >= 1 - w > 0 and an incorrect
one r <= 0, under every gate and both combinations: every correct rollout outranks every incorrect
one. With w >= 1 that guarantee is gone (presets must then say ``ordering: free``). With binary
correctness the multiplicative form equals the additive one with gate "correct".

Unscorable samples: a NaN, infinite or negative cost, or an unknown correctness (``None``) where it
matters, gives a NaN penalty, never a silent 0; a rollout that the gate excludes gets a penalty term
of 0 whatever its cost (its cost does not enter its reward). NaN samples never enter group statistics.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

METHODS = ("group_success_minmax", "group_rank", "group_zscore", "budget", "log_budget")
GROUP_METHODS = METHODS[:3]
GATES = ("correct", "all", "none", "solved")
GROUP_GATES = ("solved",)
COMBINES = ("additive", "multiplicative")
NAN = float("nan")
MINMAX_EPS = 1e-6
ZSCORE_MIN_STD = 1e-12


class BudgetReference:
    """Per-task running budget: an EMA of the mean cost of each task's successful rollouts.

        B_task <- m                                   first batch with a success on the task
        B_task <- decay * B_task + (1 - decay) * m    later batches (m = this batch's success mean)

    Plain attributes only, so it pickles; identical on every rank because it is updated from the
    gathered (whole) batch. It is updated on every reward call, evaluation batches included.
    """

    def __init__(self, decay: float = 0.9):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay: expected a number in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.values: dict[Hashable, float] = {}

    def update(self, task_ids: Sequence[Hashable], costs: Sequence[float | None], correct: Sequence[Any]) -> None:
        sums: dict[Hashable, list[float]] = {}
        for task, cost, ok in zip(task_ids, costs, correct, strict=True):
            value = _as_cost(cost)
            if _success(ok) and value is not None:
                sums.setdefault(task, []).append(value)
        for task, values in sums.items():
            mean = sum(values) / len(values)
            old = self.values.get(task)
            self.values[task] = mean if old is None else self.decay * old + (1.0 - self.decay) * mean

    def get(self, task: Hashable) -> float | None:
        return self.values.get(task)


def _success(value: Any) -> bool:
    """A rollout counts as correct when its correctness is known and >= 0.5 (bools: True)."""
    return value is not None and not _isnan(value) and float(value) >= 0.5


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _valid_cost(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        x = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(x) and x >= 0.0


def _as_cost(value: Any) -> float | None:
    """``value`` as a cost (finite, non-negative), else None."""
    return float(value) if _valid_cost(value) else None


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def normalized_cost(
    costs: Sequence[float | None],
    correct: Sequence[Any],
    group_ids: Sequence[Hashable],
    method: str,
    **options: Any,
) -> list[float]:
    """The penalty term in [0, 1] for each sample (NaN where it cannot be computed).

    Options: ``among`` ("correct" | "all", group methods), ``budget`` (float > 0), ``reference``
    (:class:`BudgetReference`), ``task_ids`` (keys of the reference; default ``group_ids``), ``cap``
    (log_budget, default 10). See the module docstring for the formulas.

    >>> normalized_cost([100, 200, 300, 400], [1, 1, 0, 1], ["a"] * 4, "group_success_minmax")[1]
    0.3333333322222222
    >>> normalized_cost([50, 200], [1, 1], ["a", "b"], "budget", budget=100.0)
    [0.5, 1.0]
    """
    n = len(costs)
    if len(correct) != n or len(group_ids) != n:
        raise ValueError(
            f"costs, correct and group_ids must have the same length, got {n}, {len(correct)}, "
            f"{len(group_ids)}"
        )
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    allowed = {"among"} if method in GROUP_METHODS else {"budget", "reference", "task_ids", "cap"}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(
            f"normalized_cost(method={method!r}): unknown option(s) {sorted(unknown)}; "
            f"expected {sorted(allowed)}"
        )
    if method in GROUP_METHODS:
        among = options.get("among", "correct")
        if method == "group_success_minmax" and among != "correct":
            raise ValueError(
                "group_success_minmax is defined among the correct rollouts only (among='correct')"
            )
        if among not in ("correct", "all"):
            raise ValueError(f"among: expected 'correct' or 'all', got {among!r}")
        return _group_penalty(costs, correct, group_ids, method, among)
    return _budget_penalty(costs, correct, group_ids, method, **options)


def _group_penalty(
    costs: Sequence[float | None],
    correct: Sequence[Any],
    group_ids: Sequence[Hashable],
    method: str,
    among: str,
) -> list[float]:
    out = [NAN] * len(costs)
    members: dict[Hashable, list[int]] = {}
    for i, (cost, ok, group) in enumerate(zip(costs, correct, group_ids, strict=True)):
        if among == "correct":
            if ok is None or _isnan(ok):
                continue  # unknown membership: NaN
            if not _success(ok):
                out[i] = 0.0
                continue
        if _valid_cost(cost):
            members.setdefault(group, []).append(i)
    for indices in members.values():
        values = [float(costs[i]) for i in indices]  # type: ignore[arg-type]  # valid costs only
        if method == "group_success_minmax":
            low, high = min(values), max(values)
            for i, x in zip(indices, values, strict=True):
                out[i] = (x - low) / (high - low + MINMAX_EPS)
        elif method == "group_rank":
            for i, x in zip(indices, values, strict=True):
                out[i] = 0.0 if len(values) < 2 else sum(v < x for v in values) / (len(values) - 1)
        else:
            logs = [math.log1p(x) for x in values]
            mean = sum(logs) / len(logs)
            std = math.sqrt(sum((y - mean) ** 2 for y in logs) / len(logs))
            for i, y in zip(indices, logs, strict=True):
                out[i] = 0.0 if len(logs) < 2 or std < ZSCORE_MIN_STD else _phi((y - mean) / std)
    return out


def _budget_penalty(
    costs: Sequence[float | None],
    correct: Sequence[Any],
    group_ids: Sequence[Hashable],
    method: str,
    budget: float | None = None,
    reference: BudgetReference | None = None,
    task_ids: Sequence[Hashable] | None = None,
    cap: float = 10.0,
) -> list[float]:
    if budget is not None and (isinstance(budget, bool) or not _valid_cost(budget) or float(budget) <= 0):
        raise ValueError(f"budget: expected a positive number, got {budget!r}")
    if budget is None and reference is None:
        raise ValueError(f"method {method!r} needs budget=<positive number> or reference=BudgetReference()")
    if not _valid_cost(cap) or float(cap) <= 0:
        raise ValueError(f"cap: expected a positive number, got {cap!r}")
    tasks = list(group_ids if task_ids is None else task_ids)
    if len(tasks) != len(costs):
        raise ValueError(f"task_ids: expected {len(costs)} entries, got {len(tasks)}")
    budgets: dict[Hashable, float] = {}
    if reference is not None:
        reference.update(tasks, costs, correct)
        fallback: dict[Hashable, list[float]] = {}
        for task, cost in zip(tasks, costs, strict=True):
            value = _as_cost(cost)
            if value is not None:
                fallback.setdefault(task, []).append(value)
        for task in set(tasks):
            ref = reference.get(task)
            if ref is None:
                ref = (
                    float(budget)
                    if budget is not None
                    else (sum(fallback[task]) / len(fallback[task]) if task in fallback else None)
                )
            if ref is not None and ref > 0:
                budgets[task] = ref
    out = []
    for cost, task in zip(costs, tasks, strict=True):
        b = budgets.get(task) if reference is not None else float(budget or 0.0)  # budget set: checked above
        x = _as_cost(cost)
        if x is None or b is None:
            out.append(NAN)
        elif method == "budget":
            out.append(min(1.0, x / b))
        else:
            out.append(min(1.0, math.log1p(x / b) / math.log1p(float(cap))))
    return out


def gate_factor(correct: Any, gate: str, combine: str = "additive") -> float:
    """The factor multiplying a sample's penalty: ``g_i`` (additive) or ``c_i`` (multiplicative).

    NaN when the correctness is unknown and matters (every gate but "all"/"none" additive). For the
    group gate "solved" this is the sample's own part (``c_i``); :func:`penalty_term` multiplies it by
    the group's ``s_G``.
    """
    if gate not in GATES:
        raise ValueError(f"gate: expected one of {GATES}, got {gate!r}")
    if combine not in COMBINES:
        raise ValueError(f"combine: expected one of {COMBINES}, got {combine!r}")
    if gate == "none":
        return 0.0
    if combine == "additive" and gate == "all":
        return 1.0
    if correct is None or _isnan(correct):
        return NAN
    if combine == "multiplicative":
        return float(correct)
    return 1.0 if _success(correct) else 0.0


def solved_groups(correct: Sequence[Any], group_ids: Sequence[Hashable]) -> set[Hashable]:
    """The groups whose every rollout is graded correct (an ungraded rollout leaves its group unsolved).

    >>> sorted(solved_groups([1, 1, 1, 0, None, 1], ["a", "a", "b", "b", "c", "c"]))
    ['a']
    """
    if len(correct) != len(group_ids):
        raise ValueError(
            f"correct and group_ids must have the same length, got {len(correct)}, {len(group_ids)}"
        )
    failed = {g for ok, g in zip(correct, group_ids, strict=True) if ok is None or _isnan(ok) or not _success(ok)}
    return set(group_ids) - failed


def gate_factors(
    correct: Sequence[Any],
    gate: str = "correct",
    combine: str = "additive",
    group_ids: Sequence[Hashable] | None = None,
) -> list[float]:
    """:func:`gate_factor` for every sample, with the group gate "solved" applied (``c_i * s_G``).

    ``group_ids`` is needed by "solved" (and ignored by the other gates).

    >>> gate_factors([1, 1, 1, 0], "solved", group_ids=["a", "a", "b", "b"])
    [1.0, 1.0, 0.0, 0.0]
    """
    solved: set[Hashable] | None = None
    if gate in GROUP_GATES:
        if group_ids is None:
            raise ValueError(f"gate {gate!r} needs group_ids")
        solved = solved_groups(correct, group_ids)
    factors = []
    for i, ok in enumerate(correct):
        factor = gate_factor(ok, gate, combine)
        if solved is not None and group_ids is not None and not math.isnan(factor) and group_ids[i] not in solved:
            factor = 0.0
        factors.append(factor)
    return factors


def penalty_term(
    penalty: Sequence[float],
    correct: Sequence[Any],
    gate: str = "correct",
    combine: str = "additive",
    group_ids: Sequence[Hashable] | None = None,
) -> list[float]:
    """``g_i * penalty_i`` (or ``c_i * penalty_i``): what ``w`` multiplies. 0 where the factor is 0.

    ``group_ids`` is needed by the group gate "solved" (and ignored by the others).

    >>> penalty_term([0.0, 1.0, 0.0, 1.0], [1, 1, 1, 0], "solved", group_ids=["a", "a", "b", "b"])
    [0.0, 1.0, 0.0, 0.0]
    """
    factors = gate_factors(correct, gate, combine, group_ids)
    return [
        0.0 if factor == 0.0 else factor * float(pen) if pen is not None else NAN
        for pen, factor in zip(penalty, factors, strict=True)
    ]


def utility(
    correct: Sequence[Any],
    penalty: Sequence[float],
    weight: float,
    gate: str = "correct",
    combine: str = "additive",
    *,
    strict_ordering: bool = True,
    group_ids: Sequence[Hashable] | None = None,
) -> list[float]:
    """``r_i = c_i - w * g_i * penalty_i`` (additive) or ``c_i * (1 - w * penalty_i)`` (multiplicative).

    ``strict_ordering`` (default) requires ``0 <= w < 1``, which guarantees that every correct rollout
    outranks every incorrect one; pass ``False`` to opt out.

    >>> utility([1, 1, 0], [0.0, 1.0, 0.5], weight=0.5)
    [1.0, 0.5, 0.0]
    """
    if not math.isfinite(weight) or weight < 0 or (strict_ordering and weight >= 1):
        bound = "[0, 1)" if strict_ordering else "[0, inf)"
        raise ValueError(f"weight: expected a number in {bound}, got {weight!r}")
    terms = penalty_term(penalty, correct, gate, combine, group_ids)
    return [
        NAN if ok is None or _isnan(ok) else float(ok) - weight * term for ok, term in zip(correct, terms, strict=True)
    ]

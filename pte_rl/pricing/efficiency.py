"""Solved work per unit of cost: how many correct answers a batch of rollouts buys with its tokens and PTE.

The ``pte/*`` keys (:mod:`pte_rl.pricing.summary`) say what rollouts cost; these say what that cost buys.
Over the *graded* rollouts of a batch (``correct`` is not None: an ungraded rollout's success is unknown,
so neither its answer nor its cost is counted, as the ``accuracy`` of :mod:`pte_rl.training.metrics`
leaves it out), with ``PTE_j`` from :func:`pte_rl.pricing.cost.pte_batch` (the only PTE code), ``N``
graded rollouts, ``S`` of them correct:

    efficiency/correct_per_1k_generated    1000 * S / sum_j generated_j          (generated: sum_i decode_i)
    efficiency/correct_per_1m_pte          1e6 * S / sum_j PTE_j
    efficiency/pte_per_solved              sum_j PTE_j / S: the cost of one pass, the failures paid for included
    efficiency/tool_productivity           S / sum_j tool_calls_j (correct answers per tool call, as OTC reports)
    efficiency/completion_rate             completed / N
    efficiency/accuracy_given_completion   (correct and completed) / completed
    efficiency/pte_per_rollout             sum_j PTE_j / N (= pte/mean when every rollout is graded)
    efficiency/accuracy_at_pte_<B>         (correct and PTE_j <= B) / N, for each budget B
    efficiency/accuracy_pte_auc            (1 / B_max) * integral_0^B_max accuracy_at_pte(B) dB
                                           = (1 / N) * sum over correct j of max(0, 1 - PTE_j / B_max)

A rollout is *completed* when it is graded and the loop did not stop it at a limit: no ``max_turns`` or
``max_tokens`` event and no such ``metadata["stop"]`` (:mod:`pte_rl.rollout.loop` records both; a log of
another agent without them counts as completed). The three factors decompose the efficiency exactly when
no unfinished rollout is graded correct (pte_rl's rollout grades an unfinished one incorrect)::

    correct_per_1m_pte = 1e6 * completion_rate * accuracy_given_completion / pte_per_rollout

The area is exact (no grid): a correct rollout of cost PTE_j counts towards every budget from PTE_j to
B_max. ``B_max`` is the largest budget; the default budgets are the fixed decades
:data:`DEFAULT_PTE_BUDGETS`, the same at every step of every run so that curves and evaluations compare; a
report that compares arms passes one set of budgets to all of them (:mod:`pte_rl.studies.anchors`).

A key with no defined value (no graded rollout, no correct one, no tool call, nothing generated) is left
out, never 0. :func:`solved_tasks` reduces rollouts to tasks for comparisons paired on the tasks two
policies both solve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pte_rl.pricing.cost import CostModel, pte_batch
from pte_rl.pricing.trajectory import Trajectory

PREFIX = "efficiency/"
DEFAULT_PTE_BUDGETS = (1_000.0, 10_000.0, 100_000.0)
LOOP_STOPS = ("max_turns", "max_tokens")  # the rollout loop's stops without a final answer


def completed(trajectory: Trajectory) -> bool:
    """Graded, and not stopped by the loop at ``max_turns`` or the token budget.

    >>> from pte_rl.pricing.trajectory import Event, Turn
    >>> t = Trajectory([Turn(10, 2)], correct=False)
    >>> completed(t), completed(Trajectory([Turn(10, 2)])), completed(Trajectory([Turn(10, 2)], correct=False,
    ...     events=[Event(0, "max_turns")])), completed(Trajectory([Turn(10, 2)], correct=False,
    ...     metadata={"stop": "max_tokens"}))
    (True, False, False, False)
    """
    if trajectory.correct is None or trajectory.metadata.get("stop") in LOOP_STOPS:
        return False
    return not any(event.kind in LOOP_STOPS for event in trajectory.events)


def budget_key(budget: float) -> str:
    """The metric key of accuracy at a PTE budget: ``efficiency/accuracy_at_pte_<budget>``.

    >>> budget_key(10_000.0), budget_key(162.5)
    ('efficiency/accuracy_at_pte_10000', 'efficiency/accuracy_at_pte_162.5')
    """
    return f"{PREFIX}accuracy_at_pte_{format(float(budget), '.12g')}"


def _checked_budgets(budgets: Sequence[float] | None) -> list[float]:
    chosen = [float(b) for b in (DEFAULT_PTE_BUDGETS if budgets is None else budgets)]
    if not chosen or any(not np.isfinite(b) or b <= 0 for b in chosen):
        raise ValueError(f"budgets: expected one or more positive finite PTE budgets, got {budgets!r}")
    return sorted(set(chosen))


def solved_work(
    trajectories: Sequence[Trajectory], cost_model: CostModel, budgets: Sequence[float] | None = None
) -> dict[str, float]:
    """The ``efficiency/*`` keys of one batch (module docstring); the largest budget is B_max.

    >>> from pte_rl.pricing.trajectory import Event, ToolCall, Turn
    >>> a = Trajectory([Turn(100, 10, tool_calls=[ToolCall("python")])], correct=True)  # PTE 110, 10 generated
    >>> b = Trajectory([Turn(100, 10), Turn(150, 20)], correct=True)                     # PTE 290, 30 generated
    >>> c = Trajectory([Turn(100, 10)], correct=False, events=[Event(0, "max_tokens")])  # PTE 110, unfinished
    >>> d = Trajectory([Turn(100, 10)], correct=False)                                   # PTE 110
    >>> u = Trajectory([Turn(900, 90)])                                                  # ungraded: left out
    >>> e = solved_work([a, b, c, d, u], CostModel(gamma=0.01), budgets=[200, 400])
    >>> e["efficiency/correct_per_1k_generated"], e["efficiency/correct_per_1m_pte"]    # 2 of 60, 2 of 620
    (33.333333333333336, 3225.8064516129034)
    >>> e["efficiency/pte_per_solved"], e["efficiency/tool_productivity"]               # 620 / 2, 2 / 1
    (310.0, 2.0)
    >>> e["efficiency/completion_rate"], e["efficiency/accuracy_given_completion"]      # 3 of 4, 2 of 3
    (0.75, 0.6666666666666666)
    >>> e["efficiency/accuracy_at_pte_200"], e["efficiency/accuracy_at_pte_400"]        # a within 200; a, b
    (0.25, 0.5)
    >>> round(e["efficiency/accuracy_pte_auc"], 6)    # ((1 - 110/400) + (1 - 290/400)) / 4
    0.25
    >>> 1e6 * 0.75 * (2 / 3) / e["efficiency/pte_per_rollout"] == e["efficiency/correct_per_1m_pte"]
    True
    """
    chosen = _checked_budgets(budgets)
    graded = [t for t in trajectories if t.correct is not None]
    if not graded:
        return {}
    cost = pte_batch(graded, cost_model).total
    right = np.array([t.correct is True for t in graded])
    done = np.array([completed(t) for t in graded])
    solved, total_pte = int(right.sum()), float(cost.sum())
    generated = sum(t.decode_tokens for t in graded)
    calls = sum(t.num_tool_calls for t in graded)
    out = {f"{PREFIX}completion_rate": float(done.mean()), f"{PREFIX}pte_per_rollout": float(cost.mean())}
    if done.any():
        out[f"{PREFIX}accuracy_given_completion"] = float((right & done).sum()) / float(done.sum())
    if generated > 0:
        out[f"{PREFIX}correct_per_1k_generated"] = 1000.0 * solved / generated
    if total_pte > 0:
        out[f"{PREFIX}correct_per_1m_pte"] = 1e6 * solved / total_pte
    if solved:
        out[f"{PREFIX}pte_per_solved"] = total_pte / solved
    if calls:
        out[f"{PREFIX}tool_productivity"] = solved / calls
    for budget in chosen:
        out[budget_key(budget)] = float((right & (cost <= budget)).mean())
    share_left = np.clip(1.0 - cost / chosen[-1], 0.0, 1.0)
    out[f"{PREFIX}accuracy_pte_auc"] = float(np.where(right, share_left, 0.0).mean())
    return out


def solved_tasks(trajectories: Sequence[Trajectory], cost_model: CostModel) -> dict[str, float]:
    """The tasks solved, each with the mean PTE of its samples: ``{task_id: mean PTE}``.

    A task (its ``task_id``; rollouts without one are left out) is *solved* when every one of its graded
    samples is correct (and at least one is graded), so that its mean PTE is the cost of correct answers
    only, with no failed attempt mixed in; ungraded samples are left out of both.

    >>> from pte_rl.pricing.trajectory import Turn
    >>> rows = [Trajectory([Turn(100, 10)], task_id="t1", correct=True),           # PTE 110
    ...         Trajectory([Turn(200, 10)], task_id="t1", correct=True),           # PTE 220
    ...         Trajectory([Turn(100, 10)], task_id="t2", correct=True),
    ...         Trajectory([Turn(100, 10)], task_id="t2", correct=False),          # t2: not every sample
    ...         Trajectory([Turn(900, 10)], task_id="t3", correct=True),
    ...         Trajectory([Turn(50, 10)], task_id="t3"),                          # ungraded: left out
    ...         Trajectory([Turn(100, 10)], correct=True)]                         # no task_id
    >>> solved_tasks(rows, CostModel(gamma=0.01))
    {'t1': 165.0, 't3': 990.0}
    """
    graded = [t for t in trajectories if t.correct is not None and t.task_id is not None]
    if not graded:
        return {}
    cost = pte_batch(graded, cost_model).total
    per_task: dict[str, list[tuple[bool, float]]] = {}
    for traj, price in zip(graded, cost, strict=True):
        per_task.setdefault(str(traj.task_id), []).append((traj.correct is True, float(price)))
    return {task: sum(p for _, p in samples) / len(samples)
            for task, samples in per_task.items() if all(ok for ok, _ in samples)}

"""The PTE summary of a batch of trajectories: the ``pte/*`` keys, computed in one place.

Whoever owns ``pte/*`` in a run calls :func:`pte_summary`: the metrics callback (through
:func:`pte_rl.training.metrics.batch_metrics`) when pte_rl's rollout produced the trajectories, or the PTE
reward when it rebuilt them from TRL's plain completions (TRL's own tool loop: no pte_rl rollout to observe).
It lives here, below both, so the two owners cannot drift apart. For ``n`` trajectories priced with
:func:`pte_rl.pricing.cost.pte_batch` (the only PTE code):

    pte/mean, pte/median, pte/p90          mean, median and 90th percentile (linear) of PTE_j
    pte/prefill_share, pte/decode_share    sum_j prefill_j / sum_j PTE_j, sum_j decode_j / sum_j PTE_j
    pte/correct_mean, pte/incorrect_mean   mean PTE_j over correct / incorrect rollouts
    pte/first_turn_share                   sum_j cost of turn 0 / sum_j PTE_j: the rest is paid in later turns,
                                           where every earlier token is re-prefilled (the paper's "cost
                                           escalates in later steps")

A key with no defined value (no correct rollouts, a batch that costs nothing) is left out, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pte_rl.pricing.cost import CostModel, TurnTable, pte_batch
from pte_rl.pricing.trajectory import Trajectory

PREFIX = "pte/"


def pte_summary(
    trajectories: Sequence[Trajectory], cost_model: CostModel, correct: Sequence[bool | None] | None = None
) -> dict[str, float]:
    """The ``pte/*`` keys of one batch (module docstring); ``correct`` defaults to each trajectory's own.

    >>> from pte_rl.pricing.trajectory import Turn
    >>> a, b = Trajectory([Turn(100, 10)]), Trajectory([Turn(100, 10), Turn(150, 20)])
    >>> s = pte_summary([a, b], CostModel(gamma=0.01), correct=[True, None])   # PTE 110 and 290
    >>> s["pte/mean"], s["pte/correct_mean"], "pte/incorrect_mean" in s
    (200.0, 110.0, False)
    >>> s["pte/first_turn_share"]   # (110 + 110) of 400: b's second turn re-prefills its first
    0.55
    """
    if not trajectories:
        return {}
    if correct is None:
        correct = [t.correct for t in trajectories]
    if len(correct) != len(trajectories):
        raise ValueError(f"correct: expected {len(trajectories)} values (one per trajectory), got {len(correct)}")
    table = TurnTable.from_trajectories(list(trajectories))
    priced = pte_batch(table, cost_model)
    total = priced.total
    summary = {
        "pte/mean": float(total.mean()),
        "pte/median": float(np.median(total)),
        "pte/p90": float(np.percentile(total, 90)),
    }
    total_sum = float(total.sum())
    if total_sum > 0:
        summary["pte/prefill_share"] = float(priced.prefill.sum()) / total_sum
        summary["pte/decode_share"] = float(priced.decode.sum()) / total_sum
        first = np.ones(len(table.trajectory), dtype=bool)
        first[1:] = table.trajectory[1:] != table.trajectory[:-1]
        summary["pte/first_turn_share"] = float((priced.turn_prefill + priced.turn_decode)[first].sum()) / total_sum
    right = np.array([c is True for c in correct])
    wrong = np.array([c is False for c in correct])
    if right.any():
        summary["pte/correct_mean"] = float(total[right].mean())
    if wrong.any():
        summary["pte/incorrect_mean"] = float(total[wrong].mean())
    return summary

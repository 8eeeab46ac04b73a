"""pte_rl.pricing.efficiency: solved work per token and per PTE, by hand and against independent methods."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from pte_rl.pricing import efficiency
from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.efficiency import completed, solved_tasks, solved_work
from pte_rl.pricing.trajectory import Event, ToolCall, Trajectory, Turn
from pte_rl.studies import seed_stats

MODEL = CostModel(gamma=0.01)


def batch() -> list[Trajectory]:
    """PTE (gamma 0.01, evict, paper): one turn C + 0.01 * C * D, two turns as in tests/test_logging.py.

    A: 100 + 10 = 110                    correct     1 call    generated 10
    B: (100 + 10) + (200 + 40) = 350     correct     2 calls   generated 30
    C: 300 + 30 = 330                    wrong       unfinished (max_turns event)     generated 10
    D: 200 + 20 = 220                    wrong       unfinished (metadata stop)       generated 10
    E: 500 + 50 = 550                    wrong       finished                         generated 10
    F: 1000 + 100 = 1100                 ungraded                                     generated 10
    """
    return [
        Trajectory([Turn(100, 10, tool_calls=[ToolCall("python")])], correct=True),
        Trajectory([Turn(100, 10, tool_calls=[ToolCall("python")]), Turn(200, 20, tool_calls=[ToolCall("search")])],
                   correct=True),
        Trajectory([Turn(300, 10)], correct=False, events=[Event(0, "max_turns")]),
        Trajectory([Turn(200, 10)], correct=False, metadata={"stop": "max_tokens"}),
        Trajectory([Turn(500, 10)], correct=False),
        Trajectory([Turn(1000, 10)]),
    ]


def test_the_module_doctests_hold():
    assert doctest.testmod(efficiency).failed == 0
    assert doctest.testmod(seed_stats).failed == 0


def test_solved_work_by_hand():
    e = solved_work(batch(), MODEL, budgets=[300, 1000])
    total = 110 + 350 + 330 + 220 + 550  # graded A..E: 1560; F's answer is unknown, its cost left out too
    assert e == pytest.approx({
        "efficiency/correct_per_1k_generated": 1000 * 2 / 70,
        "efficiency/correct_per_1m_pte": 1e6 * 2 / total,
        "efficiency/pte_per_solved": total / 2,
        "efficiency/tool_productivity": 2 / 3,
        "efficiency/completion_rate": 3 / 5,  # A, B, E
        "efficiency/accuracy_given_completion": 2 / 3,
        "efficiency/pte_per_rollout": total / 5,
        "efficiency/accuracy_at_pte_300": 1 / 5,  # A only (B costs 350)
        "efficiency/accuracy_at_pte_1000": 2 / 5,
        "efficiency/accuracy_pte_auc": ((1 - 110 / 1000) + (1 - 350 / 1000)) / 5,
    }, rel=1e-12)
    # The decomposition: efficiency = completion x correctness given completion / cost per rollout.
    decomposed = 1e6 * e["efficiency/completion_rate"] * e["efficiency/accuracy_given_completion"]
    assert decomposed / e["efficiency/pte_per_rollout"] == pytest.approx(e["efficiency/correct_per_1m_pte"])
    assert 1e6 / e["efficiency/pte_per_solved"] == pytest.approx(e["efficiency/correct_per_1m_pte"])


def test_the_area_is_the_integral_of_accuracy_over_budgets():
    """Independent method: accuracy at every budget on a fine grid, integrated by the midpoint rule."""
    rng = np.random.default_rng(3)
    trajs = [Trajectory([Turn(int(c), 5)], correct=bool(ok)) for c, ok in
             zip(rng.integers(10, 900, 40), rng.random(40) < 0.6, strict=True)]
    b_max = 600.0  # below the dearest rollouts: those count at no budget
    e = solved_work(trajs, MODEL, budgets=[b_max])
    grid = (np.arange(60_000) + 0.5) * b_max / 60_000
    cost = np.array([t.turns[0].context_tokens * 1.05 for t in trajs])
    right = np.array([t.correct for t in trajs])
    accuracy = ((cost[None, :] <= grid[:, None]) & right[None, :]).mean(axis=1)
    assert e["efficiency/accuracy_pte_auc"] == pytest.approx(accuracy.mean(), abs=1e-4)
    assert e["efficiency/accuracy_at_pte_600"] == pytest.approx(((cost <= 600) & right).mean())


def test_undefined_keys_are_left_out_never_zero():
    assert solved_work([Trajectory([Turn(10, 1)])], MODEL) == {}  # nothing graded
    assert solved_work([], MODEL) == {}
    wrong = solved_work([Trajectory([Turn(10, 1)], correct=False)], MODEL)
    assert "efficiency/pte_per_solved" not in wrong and wrong["efficiency/correct_per_1m_pte"] == 0.0
    assert "efficiency/tool_productivity" not in wrong  # no tool call: correct per call is undefined
    unfinished = solved_work([Trajectory([Turn(10, 1)], correct=False, events=[Event(0, "max_tokens")])], MODEL)
    assert unfinished["efficiency/completion_rate"] == 0.0 and "efficiency/accuracy_given_completion" not in unfinished
    free = solved_work([Trajectory([Turn(0, 0)], correct=True)], MODEL)  # nothing generated, PTE 0
    assert not {"efficiency/correct_per_1k_generated", "efficiency/correct_per_1m_pte"} & free.keys()
    assert free["efficiency/pte_per_solved"] == 0.0 and free["efficiency/accuracy_pte_auc"] == 1.0


@pytest.mark.parametrize("budgets", [[], [0], [-5.0], [float("inf")], [float("nan")]])
def test_bad_budgets_raise(budgets):
    with pytest.raises(ValueError, match="budgets"):
        solved_work(batch(), MODEL, budgets=budgets)


def test_default_budgets_are_fixed_decades():
    keys = [k for k in solved_work(batch(), MODEL) if k.startswith("efficiency/accuracy_at_pte_")]
    assert keys == ["efficiency/accuracy_at_pte_1000", "efficiency/accuracy_at_pte_10000",
                    "efficiency/accuracy_at_pte_100000"]


def test_completed_reads_the_loop_stops():
    flags = [completed(t) for t in batch()]
    assert flags == [True, True, False, False, True, False]


def test_solved_tasks_by_hand():
    trajs = [Trajectory([Turn(100, 10)], task_id="a", correct=True),   # 110
             Trajectory([Turn(300, 10)], task_id="a", correct=True),   # 330
             Trajectory([Turn(100, 10)], task_id="b", correct=False),
             Trajectory([Turn(100, 10)], task_id="b", correct=True),
             Trajectory([Turn(100, 10)], task_id="c")]                 # only ungraded samples: not solved
    assert solved_tasks(trajs, MODEL) == pytest.approx({"a": 220.0})


def test_eval_summary_carries_the_efficiency_keys(monkeypatch):
    from pte_rl import patterns
    from pte_rl.training.metrics import eval_summary

    monkeypatch.setattr(patterns, "pattern_rates", lambda trajectories, cost_model, **options: {})
    summary = eval_summary(batch(), MODEL)
    assert {k: v for k, v in summary.items() if k.startswith("efficiency/")} == solved_work(batch(), MODEL)
    assert summary["efficiency/pte_per_solved"] == pytest.approx(780.0)


def test_bootstrap_change_by_hand():
    # Two units, 330 / 440 and 220 / 440: pooled -37.5%; draws give -25%, -37.5% or -50%.
    change = seed_stats.bootstrap_change([330.0, 220.0], [440.0, 440.0])
    assert (change["mean"], change["low"], change["high"], change["n"]) == pytest.approx((-37.5, -50.0, -25.0, 2))
    assert seed_stats.bootstrap_change([10.0], [20.0]) == {"mean": -50.0, "low": None, "high": None, "n": 1}
    assert seed_stats.bootstrap_change([], [])["mean"] is None
    with pytest.raises(ValueError, match="references"):
        seed_stats.bootstrap_change([1.0], [1.0, 2.0])

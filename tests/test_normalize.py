"""Normalisations, gating and the baselines: hand-worked reward tables and hypothesis properties."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
from pte_rl.rewards import (
    METHODS,
    BudgetReference,
    DAPOOverlongReward,
    KimiLengthReward,
    LinearCallPenalty,
    LinearTokenPenalty,
    OTCToolReward,
    normalized_cost,
    otc_tool_score,
    penalty_term,
    solved_groups,
    utility,
)

NAN = float("nan")


def approx(values):
    return pytest.approx(values, rel=1e-9, abs=1e-12, nan_ok=True)


# ---------------------------------------------------------------- normalisations, by hand


def test_group_success_minmax_table():
    # group a: correct costs {100, 200, 400} -> min 100, max 400; the incorrect 300 gets 0
    # group b: one correct rollout (80): (80 - 80) / (0 + 1e-6) = 0; group c: no correct rollout
    costs = [100, 200, 300, 400, 50, 80, 10]
    correct = [1, 1, 0, 1, 0, 1, 0]
    groups = ["a", "a", "a", "a", "b", "b", "c"]
    got = normalized_cost(costs, correct, groups, "group_success_minmax")
    assert got == approx([0.0, 100 / 300.000001, 0.0, 300 / 300.000001, 0.0, 0.0, 0.0])
    assert got[1] == 100 / (400 - 100 + 1e-6)  # exactly the documented expression


def test_group_rank_table():
    got = normalized_cost([100, 200, 300, 400], [1, 1, 0, 1], ["a"] * 4, "group_rank")
    assert got == approx([0.0, 0.5, 0.0, 1.0])
    assert normalized_cost([5, 5, 7], [1, 1, 1], ["a"] * 3, "group_rank") == approx(
        [0.0, 0.0, 1.0]
    )  # ties: lower
    assert normalized_cost(
        [100, 200, 300, 400], [1, 1, 0, 1], ["a"] * 4, "group_rank", among="all"
    ) == approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert normalized_cost([9], [1], ["a"], "group_rank") == [0.0]  # a singleton has no rank spread


def test_group_zscore_table():
    # two members: z = -1 and +1 whatever the costs, so Phi(-1) = 0.158655..., Phi(1) = 0.841344...
    got = normalized_cost([10, 1000], [1, 1], ["a", "a"], "group_zscore")
    assert got == pytest.approx([0.15865525393145707, 0.8413447460685429], rel=1e-12)
    # three members against statistics.NormalDist (an independent implementation)
    costs, correct = [100, 200, 300, 400], [1, 1, 0, 1]
    logs = [math.log1p(x) for x in (100, 200, 400)]
    mu, sigma = statistics.fmean(logs), statistics.pstdev(logs)
    expected = [statistics.NormalDist().cdf((y - mu) / sigma) for y in logs]
    got = normalized_cost(costs, correct, ["a"] * 4, "group_zscore")
    assert got == approx([expected[0], expected[1], 0.0, expected[2]])
    assert got[0] == pytest.approx(0.1105, abs=1e-4) and got[3] == pytest.approx(0.8898, abs=1e-4)
    assert normalized_cost([7, 7, 7], [1, 1, 1], ["a"] * 3, "group_zscore") == [0.0, 0.0, 0.0]  # no spread


def test_budget_and_log_budget_tables():
    assert normalized_cost([50, 100, 250], [1, 0, 1], ["a"] * 3, "budget", budget=100) == [0.5, 1.0, 1.0]
    got = normalized_cost([50, 100, 250, 500], [1] * 4, ["a"] * 4, "log_budget", budget=100, cap=3)
    # log1p(0.5)/log(4) = 0.405465/1.386294; log(2)/log(4) = 0.5; log1p(2.5)/log(4); log1p(5)/log(4) > 1 -> 1
    assert got == approx([math.log(1.5) / math.log(4), 0.5, math.log(3.5) / math.log(4), 1.0])
    assert got[0] == pytest.approx(0.292481, abs=1e-6)


def test_budget_ema_reference_table():
    reference = BudgetReference(decay=0.5)
    # batch 1: successes 100, 300 -> B = 200 (first sight: the mean itself)
    got = normalized_cost([100, 300, 1000], [1, 1, 0], ["t"] * 3, "budget", reference=reference)
    assert got == [0.5, 1.0, 1.0] and reference.get("t") == 200.0
    # batch 2: success mean 50 -> B = 0.5 * 200 + 0.5 * 50 = 125
    got = normalized_cost([50, 150], [1, 0], ["t", "t"], "budget", reference=reference)
    assert got == [0.4, 1.0] and reference.get("t") == 125.0
    # an unseen task without a success: the batch mean of its costs (50), not stored
    got = normalized_cost([40, 60], [0, 0], ["u", "u"], "budget", reference=reference)
    assert got == [0.8, 1.0] and reference.get("u") is None
    # task ids other than the groups
    got = normalized_cost([250], [0], ["g"], "budget", reference=reference, task_ids=["t"])
    assert got == [1.0]


def test_bad_samples_give_nan_not_zero():
    costs = [100, NAN, 300, None, 200, -5]
    correct = [1, 1, 1, 1, None, 1]
    got = normalized_cost(costs, correct, ["a"] * 6, "group_success_minmax")
    # NaN / None / negative costs are left out of the statistics and marked NaN; unknown correctness -> NaN
    assert got == approx([0.0, NAN, 200 / 200.000001, NAN, NAN, NAN])
    assert math.isnan(normalized_cost([NAN], [1], ["a"], "budget", budget=10)[0])


def test_normalized_cost_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        normalized_cost([1], [1], ["a"], "minmax")
    with pytest.raises(ValueError, match="same length"):
        normalized_cost([1, 2], [1], ["a"], "group_rank")
    with pytest.raises(TypeError, match="unknown option"):
        normalized_cost([1], [1], ["a"], "group_rank", budget=3)
    with pytest.raises(ValueError, match="budget"):
        normalized_cost([1], [1], ["a"], "budget")
    with pytest.raises(ValueError, match="among"):
        normalized_cost([1], [1], ["a"], "group_success_minmax", among="all")
    with pytest.raises(ValueError, match="ema_decay"):
        BudgetReference(decay=1.0)


# ---------------------------------------------------------------- gating and combination, by hand


def test_gate_and_combine_table():
    correct, penalty = [1, 1, 0, 0], [0.2, 1.0, 0.5, NAN]
    assert utility(correct, penalty, 0.5, "correct", "additive") == [0.9, 0.5, 0.0, 0.0]
    assert utility(correct, penalty, 0.5, "all", "additive") == approx([0.9, 0.5, -0.25, NAN])
    assert utility(correct, penalty, 0.5, "none", "additive") == [1.0, 1.0, 0.0, 0.0]
    assert utility(correct, penalty, 0.5, "correct", "multiplicative") == [0.9, 0.5, 0.0, 0.0]
    assert utility([None], [0.3], 0.5) == approx([NAN])
    assert penalty_term([0.2, 0.5], [1, 0], "all") == [0.2, 0.5]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        utility([1], [0.0], 1.0)
    assert utility([1, 0], [1.0, 0.0], 1.5, strict_ordering=False) == [-0.5, 0.0]  # opted out: 1 - 1.5 < 0


def test_solved_gate_prices_cost_only_in_groups_without_a_failure():
    correct, groups = [1, 1, 1, 0, 1, None, 0, 0], ["a", "a", "b", "b", "c", "c", "d", "d"]
    assert solved_groups(correct, groups) == {"a"}  # b failed, c has an ungraded rollout, d failed
    penalty = [0.0, 1.0, 0.0, 0.5, 1.0, 0.4, 0.3, 0.0]
    # a: both correct, penalised as under "correct"; b, c, d: correctness alone (the None stays NaN)
    assert utility(correct, penalty, 0.5, "solved", group_ids=groups) == approx(
        [1.0, 0.5, 1.0, 0.0, 1.0, NAN, 0.0, 0.0]
    )
    assert utility(correct, penalty, 0.5, "solved", "multiplicative", group_ids=groups) == approx(
        [1.0, 0.5, 1.0, 0.0, 1.0, NAN, 0.0, 0.0]
    )
    assert penalty_term([1.0, 1.0], [1, 1], "solved", group_ids=["a", "b"]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="needs group_ids"):
        penalty_term([1.0], [1], "solved")
    with pytest.raises(ValueError, match="same length"):
        solved_groups([1, 1], ["a"])


# ---------------------------------------------------------------- baselines, by hand


def _records(lengths=None, calls=None, correct=None, context=10):
    out = []
    for i, ok in enumerate(correct):
        decode = lengths[i] if lengths else 5
        tool_calls = [ToolCall("python") for _ in range(calls[i])] if calls else []
        out.append(Trajectory([Turn(context, decode, tool_calls=tool_calls)], correct=ok).to_dict())
    return out


def _call(reward, records, groups, **kwargs):
    return reward(
        prompts=None,
        completions=[[] for _ in records],
        completion_ids=None,
        trajectory=records,
        task_id=groups,
        **kwargs,
    )


def test_kimi_length_table():
    records = _records(
        lengths=[100, 200, 300, 300, 150, 150, 10, 20],
        correct=[True, False, True, False, True, False, False, True],
    )
    got = _call(KimiLengthReward(), records, ["a"] * 4 + ["b"] * 2 + ["c"] * 2)
    # a: min 100, max 300 -> lambda = 0.5, 0, -0.5, -0.5; incorrect -> min(0, lambda)
    # b: equal lengths -> 0; c: the short incorrect one gets min(0, 0.5) = 0, the long correct one -0.5
    assert got == [0.5, 0.0, -0.5, -0.5, 0.0, 0.0, 0.0, -0.5]


def test_dapo_overlong_table():
    reward = DAPOOverlongReward(max_tokens=100, cache_tokens=20)
    ids = [[0] * n for n in (80, 81, 90, 100, 101)]
    got = reward(prompts=None, completions=[""] * 5, completion_ids=ids)
    assert got == approx([0.0, -0.05, -0.5, -1.0, -1.0])
    # length = generated tokens from the records instead of completion_ids
    reward = DAPOOverlongReward(max_tokens=100, cache_tokens=20, length="generated_tokens")
    assert _call(reward, _records(lengths=[90], correct=[True]), ["a"]) == [-0.5]


def test_otc_tool_table():
    assert otc_tool_score(3, 2, 1.0) == pytest.approx(math.sin(0.6 * math.pi))  # f = 12/5 = 2.4
    records = _records(calls=[2, 3, 6, 1, 0, 1, 3], correct=[True, True, True, False, True, True, True])
    groups = ["a"] * 4 + ["b"] * 3
    got = _call(OTCToolReward(), records, groups)
    # a: n = 2 (fewest calls among correct): m=2 -> 1; m=3 -> sin(0.6 pi) = 0.951057; m=6 -> sin(3 pi/4)
    # b: n = 0: m=0 -> 1; m=1 -> cos(pi/3) = 0.5; m=3 -> cos(3 pi/7) = 0.222521
    assert got == approx(
        [
            0.0,
            -(1 - 0.9510565162951535),
            -(1 - math.sqrt(0.5)),
            0.0,
            0.0,
            -0.5,
            -(1 - math.cos(3 * math.pi / 7)),
        ]
    )
    paper = _call(OTCToolReward(form="paper", alpha=2.0), records, groups)
    assert paper == approx(
        [2.0, 2 * 0.9510565162951535, 2 * math.sqrt(0.5), 0.0, 2.0, 1.0, 2 * math.cos(3 * math.pi / 7)]
    )


def test_linear_penalties_table():
    records = _records(lengths=[50, 150, 50], calls=[1, 4, 2], correct=[True, True, False])
    assert _call(LinearTokenPenalty(coef=0.01, cap=1.0), records, ["a"] * 3) == [-0.5, -1.0, 0.0]
    assert _call(LinearTokenPenalty(coef=0.01, cap=None, gate="all"), records, ["a"] * 3) == [
        -0.5,
        -1.5,
        -0.5,
    ]
    assert _call(LinearCallPenalty(coef=0.1), records, ["a"] * 3) == approx([-0.1, -0.4, 0.0])
    # gate "solved": group a holds a failure, so only group b (all correct) is penalised
    groups = ["a", "a", "a", "b", "b"]
    records = _records(lengths=[50, 150, 50, 20, 40], correct=[True, True, False, True, True])
    got = _call(LinearTokenPenalty(coef=0.01, cap=1.0, gate="solved"), records, groups)
    assert got == approx([0.0, 0.0, 0.0, -0.2, -0.4])


def test_solved_gate_of_the_group_penalties():
    from pte_rl.rewards import CostPenalty

    groups = ["a"] * 3 + ["b"] * 3
    records = _records(lengths=[10, 20, 30, 10, 20, 30], correct=[True, True, True, True, True, False])
    minmax = _call(CostPenalty(cost="generated_tokens", gate="solved"), records, groups)
    assert minmax == approx([0.0, -0.5 / (1 + 5e-8), -1.0 / (1 + 5e-8), 0.0, 0.0, 0.0])
    assert CostPenalty(cost="generated_tokens", gate="solved").needs_correct
    records = _records(calls=[1, 2, 1, 2, 3], correct=[True, True, True, True, False])
    groups = ["a", "a", "b", "b", "b"]
    two_for_one = -(1 - math.sin(2 / 3 * math.pi))  # m = 2 against n = 1: f = 4/3
    otc = _call(OTCToolReward(gate="solved"), records, groups)
    assert otc == approx([0.0, two_for_one, 0.0, 0.0, 0.0])  # b holds a failure: correctness alone
    assert _call(OTCToolReward(gate="correct"), records, groups) == approx(
        [0.0, two_for_one, 0.0, two_for_one, 0.0]
    )
    assert OTCToolReward(gate="solved").config()["gate"] == "solved"
    with pytest.raises(ValueError, match="gate: expected 'correct' or 'solved'"):
        OTCToolReward(gate="all")


# ---------------------------------------------------------------- properties

group_rows = st.lists(
    st.tuples(st.sampled_from("abc"), st.floats(0.0, 1e6, allow_nan=False), st.booleans()),
    min_size=1,
    max_size=12,
)


def _utilities(rows, method, gate, combine, weight):
    groups, costs, correct = zip(*rows, strict=True)
    options = {"budget": 1000.0} if method in ("budget", "log_budget") else {}
    if method in ("group_rank", "group_zscore") and gate == "all":
        options["among"] = "all"
    penalty = normalized_cost(list(costs), list(correct), list(groups), method, **options)
    assert all(0.0 <= p <= 1.0 for p in penalty)
    return utility(list(correct), penalty, weight, gate, combine, group_ids=list(groups))


@settings(max_examples=150, deadline=None)
@given(
    group_rows,
    st.sampled_from(METHODS),
    st.sampled_from(["correct", "all", "none", "solved"]),
    st.sampled_from(["additive", "multiplicative"]),
    st.floats(0.0, 0.999),
)
def test_more_cost_never_earns_more_at_equal_correctness(rows, method, gate, combine, weight):
    rewards = _utilities(rows, method, gate, combine, weight)
    for i, (group_i, cost_i, ok_i) in enumerate(rows):
        for j, (group_j, cost_j, ok_j) in enumerate(rows):
            if group_i == group_j and ok_i == ok_j and cost_i > cost_j:
                assert rewards[i] <= rewards[j] + 1e-12


@settings(max_examples=150, deadline=None)
@given(
    group_rows,
    st.sampled_from(METHODS),
    st.sampled_from(["correct", "all", "solved"]),
    st.sampled_from(["additive", "multiplicative"]),
    st.floats(0.0, 0.999),
)
def test_every_correct_rollout_outranks_every_incorrect_one(rows, method, gate, combine, weight):
    rewards = _utilities(rows, method, gate, combine, weight)
    for i, (group_i, _, ok_i) in enumerate(rows):
        for j, (group_j, _, ok_j) in enumerate(rows):
            if group_i == group_j and ok_i and not ok_j:
                assert rewards[i] > rewards[j]

"""Per-batch metrics of rollouts: PTE statistics, accuracy, tokens, tool calls, turns, pattern rates.

Pure functions over :class:`pte_rl.pricing.trajectory.Trajectory` records (no I/O, no torch), used by the
training logs (:mod:`pte_rl.training.tracking`) and by the ablation report. For ``n`` trajectories with
``PTE_j`` priced by :func:`pte_rl.pricing.cost.pte_batch` (the only PTE code):

    pte/mean, pte/median, pte/p90          mean, median and 90th percentile (linear) of PTE_j
    pte/prefill_share, pte/decode_share    sum_j prefill_j / sum_j PTE_j, sum_j decode_j / sum_j PTE_j
    pte/first_turn_share                   sum_j cost of turn 0 / sum_j PTE_j
    pte/correct_mean, pte/incorrect_mean   mean PTE_j over correct / incorrect rollouts
                                           (these eight: pte_rl.pricing.summary.pte_summary, shared with
                                           the PTE reward, which logs them in TRL's own tool loop)
    accuracy                               correct / graded (ungraded rollouts, correct=None, left out)
    tokens/generated_mean                  mean over trajectories of sum_i decode_i
    tokens/total_mean                      mean over trajectories of sum_i (context_i + decode_i)
    tools/calls_per_trajectory             (all calls) / n;  tools/calls/<tool>: (calls of <tool>) / n
    turns/mean                             mean number of assistant turns
    patterns/<name>_rate, patterns/<name>_cost_multiplier    from pte_rl.patterns.pattern_rates
    efficiency/*                           solved work per token and per PTE, completion, accuracy at PTE
                                           budgets and its area: pte_rl.pricing.efficiency.solved_work
                                           (the fixed default budgets, the same at every step)

A key with no defined value (no correct rollouts, no flagged trajectories) is left out, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pte_rl.pricing.cost import CostModel, pte, pte_batch, token_totals
from pte_rl.pricing.efficiency import solved_work
from pte_rl.pricing.summary import pte_summary
from pte_rl.pricing.trajectory import Trajectory

SAMPLE_TEXT_CHARS = 2000  # assistant text kept per turn in the sample table


def _as_trajectory(item: Trajectory | dict) -> Trajectory:
    """The rollout hands reward functions ``Trajectory.to_dict()`` records; accept both forms."""
    return item if isinstance(item, Trajectory) else Trajectory.from_dict(item)


def _pattern_metrics(
    trajectories: list[Trajectory], cost_model: CostModel, toolsets: Any, patterns: Any = None
) -> dict[str, float]:
    """``pte_rl.patterns.pattern_rates`` when that module is present (imported lazily), else nothing."""
    try:
        from pte_rl.patterns import pattern_rates
    except ModuleNotFoundError as exc:
        if exc.name != "pte_rl.patterns":
            raise
        return {}
    options: dict[str, Any] = {} if toolsets is None else {"toolsets": toolsets}
    if patterns is not None:  # a pte_rl.patterns.PatternConfig (tool families, compute tools, ...)
        options["config"] = patterns
    return dict(pattern_rates(trajectories, cost_model, **options))


def batch_metrics(
    trajectories: Sequence[Trajectory | dict], cost_model: CostModel, *, toolsets: Any = None, patterns: Any = None
) -> dict[str, float]:
    """Metrics of one batch of rollouts; the keys and formulas are in the module docstring.

    >>> from pte_rl.pricing.trajectory import Turn
    >>> a = Trajectory([Turn(100, 10)], correct=True)
    >>> b = Trajectory([Turn(100, 10), Turn(150, 20)], correct=False)
    >>> m = batch_metrics([a, b], CostModel(gamma=0.01))
    >>> m["pte/mean"], m["pte/correct_mean"], m["accuracy"], m["turns/mean"]   # (110 + 290) / 2
    (200.0, 110.0, 0.5, 1.5)
    >>> m["efficiency/pte_per_solved"], m["efficiency/correct_per_1k_generated"]   # 400 / 1, 1000 * 1 / 40
    (400.0, 25.0)
    """
    trajs = [_as_trajectory(t) for t in trajectories]
    if not trajs:
        return {}
    n = len(trajs)
    metrics = pte_summary(trajs, cost_model)  # pte/*: the one summary function, shared with the PTE reward
    correct = np.array([t.correct is True for t in trajs])
    incorrect = np.array([t.correct is False for t in trajs])
    if correct.any() or incorrect.any():
        metrics["accuracy"] = float(correct.sum()) / float(correct.sum() + incorrect.sum())
    totals = [token_totals(t) for t in trajs]
    metrics["tokens/generated_mean"] = sum(t["generated_tokens"] for t in totals) / n
    metrics["tokens/total_mean"] = sum(t["total_tokens"] for t in totals) / n
    counts: dict[str, int] = {}
    for traj in trajs:
        for name, count in traj.tool_call_counts().items():
            counts[name] = counts.get(name, 0) + count
    metrics["tools/calls_per_trajectory"] = sum(counts.values()) / n
    for name in sorted(counts):
        metrics[f"tools/calls/{name}"] = counts[name] / n
    metrics["turns/mean"] = sum(len(t.turns) for t in trajs) / n
    for key, value in _pattern_metrics(trajs, cost_model, toolsets, patterns).items():
        if value is not None and math.isfinite(float(value)):
            metrics[key] = float(value)
    metrics.update(solved_work(trajs, cost_model))
    return metrics


def sample_table(trajectories: Sequence[Trajectory | dict], cost_model: CostModel, k: int) -> list[dict]:
    """Up to ``k`` trajectories with their per-turn PTE breakdown, spread over the batch's PTE range.

    The trajectories are ranked by PTE and the ranks ``round(j * (n - 1) / (k - 1))``, j = 0..k-1, are
    kept: the cheapest, the dearest and evenly spaced ones between (all of them when k >= n). Each row:
    id, task_id, correct, answer, ground_truth, pte, prefill_pte, decode_pte, generated_tokens,
    tool_calls, events, and ``turns``: [{turn, context_tokens, decode_tokens, cached_tokens,
    prefill_pte, decode_pte, pte, tool_calls, tool_tokens, text}].
    """
    trajs = [_as_trajectory(t) for t in trajectories]
    if k <= 0 or not trajs:
        return []
    order = np.argsort(pte_batch(trajs, cost_model).total, kind="stable")
    if k >= len(trajs):
        picked = [int(i) for i in order]
    else:
        ranks = sorted({round(j * (len(trajs) - 1) / (k - 1)) for j in range(k)}) if k > 1 else [0]
        picked = [int(order[r]) for r in ranks]
    rows = []
    for index in picked:
        traj = trajs[index]
        breakdown = pte(traj, cost_model)
        texts = traj.assistant_texts()
        turns = [
            {
                "turn": i,
                "context_tokens": turn.context_tokens,
                "decode_tokens": turn.decode_tokens,
                "cached_tokens": turn.cached_tokens,
                "prefill_pte": cost.prefill,
                "decode_pte": cost.decode,
                "pte": cost.total,
                "tool_calls": [call.name for call in turn.tool_calls],
                "tool_tokens": turn.tool_tokens,
                "text": texts[i][:SAMPLE_TEXT_CHARS] if i < len(texts) else "",
            }
            for i, (turn, cost) in enumerate(zip(traj.turns, breakdown.turns, strict=True))
        ]
        rows.append({
            "id": traj.id if traj.id is not None else str(index),
            "task_id": traj.task_id,
            "correct": traj.correct,
            "answer": traj.answer,
            "ground_truth": None if traj.ground_truth is None else str(traj.ground_truth),
            "pte": breakdown.total,
            "prefill_pte": breakdown.prefill,
            "decode_pte": breakdown.decode,
            "generated_tokens": traj.decode_tokens,
            "tool_calls": traj.num_tool_calls,
            "events": [f"{e.kind}@{e.turn}" for e in traj.events],
            "turns": turns,
        })
    return rows


TABLE_COLUMNS = ("step", "sample", "id", "task_id", "correct", "pte_total", "turn", "context_tokens",
                 "decode_tokens", "prefill_pte", "decode_pte", "pte", "tool_calls", "text")


def table_rows(step: int, rows: Sequence[dict]) -> list[list[Any]]:
    """:func:`sample_table` rows flattened to one row per turn, in the order of :data:`TABLE_COLUMNS`."""
    flat = []
    for sample, row in enumerate(rows):
        for turn in row["turns"]:
            flat.append([
                step, sample, row["id"], row["task_id"], row["correct"], row["pte"], turn["turn"],
                turn["context_tokens"], turn["decode_tokens"], turn["prefill_pte"], turn["decode_pte"],
                turn["pte"], ", ".join(turn["tool_calls"]), turn["text"],
            ])
    return flat


SUMMARY_FROM_METRICS = {  # eval/summary.json key <- batch_metrics key
    "accuracy": "accuracy", "pte_mean": "pte/mean", "pte_median": "pte/median", "pte_p90": "pte/p90",
    "prefill_share": "pte/prefill_share", "generated_tokens_mean": "tokens/generated_mean",
    "total_tokens_mean": "tokens/total_mean", "tool_calls_mean": "tools/calls_per_trajectory",
    "turns_mean": "turns/mean",
}


def eval_summary(
    trajectories: Sequence[Any], cost_model: CostModel, *, toolsets: Any = None, patterns: Any = None
) -> dict[str, Any]:
    """The eval/summary.json record of held-out trajectories.

    Keys: ``n``, then the keys of :data:`SUMMARY_FROM_METRICS` (e.g. ``pte_mean`` = ``pte/mean`` of
    :func:`batch_metrics`), every ``patterns/<name>_rate`` / ``patterns/<name>_cost_multiplier`` and
    every ``efficiency/*`` key (:func:`pte_rl.pricing.efficiency.solved_work`, default budgets) as they
    are. Keys with no defined value are left out.
    """
    metrics = batch_metrics(trajectories, cost_model, toolsets=toolsets, patterns=patterns)
    summary: dict[str, Any] = {"n": len(trajectories)}
    summary.update({k: metrics[source] for k, source in SUMMARY_FROM_METRICS.items() if source in metrics})
    summary.update({k: v for k, v in metrics.items() if k.startswith(("patterns/", "efficiency/"))})
    return summary

"""The ablation report's efficiency columns and the columns that make it comparable with published anchors.

**Solved work per token** (:func:`pte_rl.pricing.efficiency.solved_work`, the ``efficiency/*`` keys), per
run, recomputed from its ``eval/trajectories.jsonl`` with one set of PTE budgets for every arm, so that
accuracy at a budget and the area under accuracy-vs-budget compare across arms. Unless given
(``--pte-budget``), ``B_max`` is the 90th percentile of PTE over the baseline group's held-out rollouts
(every run's when the baseline has no trajectories), rounded up to two significant digits: the budget
that covers nine in ten of the reference policy's rollouts. The budgets are ``B_max / 4``, ``B_max / 2``
and ``B_max``. A run without trajectories keeps its summary's budget-free keys (PTE per solved, ...) and
has no accuracy at a budget (its summary's were at other budgets).

**Against the baseline** (``--baseline``, default ``correctness``), per group:

    tool-call change      = mean_runs(tool_calls_mean) / mean_baseline(tool_calls_mean) - 1       (in %)
    tool productivity     = mean over the group's runs of efficiency/tool_productivity (correct answers per
                            tool call, as OTC reports it), beside the baseline's and its change in %
    paired PTE change     = sum over pairs of PTE_group / sum over pairs of PTE_baseline - 1       (in %)

A *pair* is a (seed, task) that both arms solve in that seed's held-out evaluation: the runs of the two
arms with the same seed, and a task that each solves, every graded sample of it correct
(:func:`pte_rl.pricing.efficiency.solved_tasks`), priced at the mean PTE of its samples. Only tasks both
solve are compared, so the change is the cost of the same solved work, not a cheaper policy that solves
fewer (or easier) tasks. Its 95% interval is a bootstrap over tasks (:func:`pte_rl.studies.seed_stats.
bootstrap_change`, 2000 draws, seed 0, so the report is reproducible): a task drawn brings its pairs of
every seed, since the same held-out tasks are evaluated in every seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from pte_rl.pricing.cost import pte_batch
from pte_rl.pricing.efficiency import budget_key, solved_tasks, solved_work
from pte_rl.studies.seed_stats import bootstrap_change, stats

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
# Budget-free efficiency columns: (key, heading, decimals); the budget columns follow, then the area.
EFFICIENCY_COLUMNS = (
    ("efficiency/correct_per_1k_generated", "correct / 1k generated", 2),
    ("efficiency/correct_per_1m_pte", "correct / 1M PTE", 1),
    ("efficiency/pte_per_solved", "PTE per solved", 1),
    ("efficiency/completion_rate", "completion", 3),
    ("efficiency/accuracy_given_completion", "accuracy given completion", 3),
    ("efficiency/tool_productivity", "correct / tool call", 2),
)
AUC_KEY = "efficiency/accuracy_pte_auc"


def report_budgets(runs: Sequence[Any], baseline: str, budget_max: float | None = None) -> list[float]:
    """``[B_max / 4, B_max / 2, B_max]`` (module docstring); ``[]`` when no run has trajectories to price."""
    if budget_max is None:
        base = [r for r in runs if r.preset == baseline and not r.overrides and r.eval_trajectories]
        pool = base or [r for r in runs if r.eval_trajectories]
        if not pool:
            return []
        p90 = float(np.percentile(np.concatenate([pte_batch(r.eval_trajectories, r.cost_model).total
                                                  for r in pool]), 90))
        if p90 <= 0:
            return []
        step = 10.0 ** (math.floor(math.log10(p90)) - 1)  # two significant digits
        budget_max = math.ceil(p90 / step - 1e-9) * step
    return [budget_max / 4, budget_max / 2, float(budget_max)]


def with_efficiency(runs: Sequence[Any], budgets: Sequence[float]) -> list[Any]:
    """Copies of ``runs`` whose ``eval`` carries the ``efficiency/*`` keys at ``budgets`` (module docstring)."""
    out = []
    for run in runs:
        evaluation = {k: v for k, v in run.eval.items()
                      if not (k.startswith("efficiency/accuracy_at_pte_") or k == AUC_KEY)}
        if run.eval_trajectories and budgets:
            evaluation.update(solved_work(run.eval_trajectories, run.cost_model, budgets))
        out.append(replace(run, eval=evaluation))
    return out


def efficiency_keys(budgets: Sequence[float]) -> list[str]:
    """The efficiency columns of the report, in order."""
    keys = [key for key, _, _ in EFFICIENCY_COLUMNS] + [budget_key(b) for b in budgets]
    return keys + ([AUC_KEY] if budgets else [])


def _mean(runs: Sequence[Any], key: str) -> float | None:
    return stats([r.eval.get(key) for r in runs])["mean"]


def _pct(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else 100.0 * (value / reference - 1.0)


def paired_task_pte(runs: Sequence[Any], reference: Sequence[Any]) -> dict[str, Any] | None:
    """PTE of ``runs`` against ``reference`` on the (seed, task) pairs both solve (module docstring); None
    when no seed of the two has trajectories on both sides."""
    by_seed = {r.seed: r for r in reference if r.eval_trajectories}
    per_task: dict[str, list[float]] = {}
    per_seed = []
    for run in runs:
        other = by_seed.get(run.seed)
        if other is None or not run.eval_trajectories:
            continue
        mine, theirs = solved_tasks(run.eval_trajectories, run.cost_model), solved_tasks(
            other.eval_trajectories, other.cost_model)
        common = sorted(set(mine) & set(theirs))
        for task in common:
            sums = per_task.setdefault(task, [0.0, 0.0])
            sums[0], sums[1] = sums[0] + mine[task], sums[1] + theirs[task]
        pte = sum(mine[t] for t in common) / len(common) if common else None
        against = sum(theirs[t] for t in common) / len(common) if common else None
        per_seed.append({"seed": run.seed, "tasks": len(common), "pte": pte, "against": against,
                         "change_pct": _pct(pte, against)})
    if not per_seed:
        return None
    pairs = sum(s["tasks"] for s in per_seed)
    tasks = sorted(per_task)
    change = bootstrap_change([per_task[t][0] for t in tasks], [per_task[t][1] for t in tasks],
                              resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    return {"seeds": [s["seed"] for s in per_seed], "tasks": len(tasks), "pairs": pairs,
            "pte": sum(per_task[t][0] for t in tasks) / pairs if pairs else None,
            "against": sum(per_task[t][1] for t in tasks) / pairs if pairs else None,
            "change_pct": change, "per_seed": per_seed}


def anchor_columns(runs: Sequence[Any], reference: Sequence[Any]) -> dict[str, Any]:
    """Tool-call change, tool productivity and paired PTE change of ``runs`` against ``reference``."""
    productivity, productivity_ref = (_mean(runs, "efficiency/tool_productivity"),
                                      _mean(reference, "efficiency/tool_productivity"))
    return {
        "tool_calls_pct": _pct(_mean(runs, "tool_calls_mean"), _mean(reference, "tool_calls_mean")),
        "tool_productivity": productivity, "tool_productivity_baseline": productivity_ref,
        "tool_productivity_pct": _pct(productivity, productivity_ref),
        "paired_pte": paired_task_pte(runs, reference),
    }


# --- output ---------------------------------------------------------------------------------------------


def cell(stat: dict, decimals: int) -> str:
    """mean ± std (min–max) over seeds; the mean alone for one seed; – for none."""
    if stat["mean"] is None:
        return "–"
    text = f"{stat['mean']:.{decimals}f}"
    if stat["n"] > 1:
        text += f" ± {stat['std']:.{decimals}f} ({stat['min']:.{decimals}f}–{stat['max']:.{decimals}f})"
    return text


def signed(value: float | None, unit: str) -> str:
    return "–" if value is None else f"{value:+.1f}{unit}"


def ci(value: dict, unit: str) -> str:
    """A change with its 95% interval, ``+1.23% (-0.50 to +2.90)``; the change alone without one."""
    if value["mean"] is None:
        return "–"
    if value["low"] is None:
        return f"{value['mean']:+.2f}{unit}"
    return f"{value['mean']:+.2f}{unit} ({value['low']:+.2f} to {value['high']:+.2f})"


def _number(value: float | None, decimals: int) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def markdown_sections(summary: dict) -> list[str]:
    """The report's "Solved work per token" and "Against <baseline>" sections (Markdown lines)."""
    budgets, baseline = summary.get("pte_budgets") or [], summary["baseline"]
    heads = [h for _, h, _ in EFFICIENCY_COLUMNS] + [f"accuracy at PTE {b:,.0f}" for b in budgets]
    heads += [f"area to {budgets[-1]:,.0f}"] if budgets else []
    keys = efficiency_keys(budgets)
    decimals = [d for _, _, d in EFFICIENCY_COLUMNS] + [3] * (len(keys) - len(EFFICIENCY_COLUMNS))
    lines = ["", "## Solved work per token", "",
             ("Held-out evaluation, over graded rollouts: correct answers per 1k generated tokens and per 1M PTE, "
              "PTE per solved rollout (failures paid for included), completion (ended with an answer) and "
              "accuracy given completion, correct answers per tool call, accuracy within a PTE budget "
              "(the same budgets for every group) and the area under accuracy-vs-budget from 0 (1 = every "
              "rollout correct at no cost). Cells as above."), "",
             "| group | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 1)]
    for group in summary["groups"]:
        cells = [cell(group["stats"][k], d) for k, d in zip(keys, decimals, strict=True)]
        lines.append(f"| {group['group']} | " + " | ".join(cells) + " |")
    rows = [(g, g.get(f"anchors_vs_{baseline}")) for g in summary["groups"]]
    rows = [(g, a) for g, a in rows if a and not (g["preset"] == baseline and not g["overrides"])]
    if not rows:
        return lines
    lines += ["", f"## Against {baseline}, comparable with the anchors", "",
              (f"Tool-call change and tool productivity (correct answers per tool call, in brackets: "
               f"{baseline}'s and the change) as OTC reports them; PTE on the tasks both arms solve in the "
               "same seed (every sample correct), mean per (seed, task) pair, and its change with a 95% "
               f"bootstrap interval over tasks ({BOOTSTRAP_RESAMPLES} draws, seed {BOOTSTRAP_SEED})."), "",
              f"| group | tool calls vs {baseline} | correct / tool call | pairs (tasks) | PTE on tasks both "
              f"solve (group / {baseline}) | PTE change on tasks both solve |", "|---|---|---|---|---|---|"]
    for group, anchors in rows:
        paired = anchors["paired_pte"] or {}
        productivity = (f"{_number(anchors['tool_productivity'], 2)} "
                        f"({_number(anchors['tool_productivity_baseline'], 2)}, "
                        f"{signed(anchors['tool_productivity_pct'], '%')})")
        counts = f"{paired['pairs']} ({paired['tasks']})" if paired else "–"
        costs = f"{_number(paired.get('pte'), 1)} / {_number(paired.get('against'), 1)}" if paired else "–"
        change = ci(paired["change_pct"], "%") if paired else "–"
        lines.append(f"| {group['group']} | {signed(anchors['tool_calls_pct'], '%')} | {productivity} | "
                     f"{counts} | {costs} | {change} |")
    return lines


CSV_ANCHOR_FIELDS = ("tool_calls_change_pct", "tool_productivity_change_pct", "paired_pte_change_pct",
                     "paired_pte_change_low", "paired_pte_change_high", "paired_pte_pairs", "paired_pte_tasks")


def csv_cells(anchors: dict | None) -> list[Any]:
    """The anchor columns of one group's CSV row, in the order of :data:`CSV_ANCHOR_FIELDS`."""
    if not anchors:
        return [""] * len(CSV_ANCHOR_FIELDS)
    paired = anchors["paired_pte"] or {}
    change = paired.get("change_pct") or {}
    values = [anchors["tool_calls_pct"], anchors["tool_productivity_pct"], change.get("mean"), change.get("low"),
              change.get("high"), paired.get("pairs"), paired.get("tasks")]
    return ["" if v is None else v for v in values]

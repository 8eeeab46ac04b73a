"""The harness probe's measures: how a policy fares under each harness, and what a harness costs it.

Per harness, over its trajectories (:func:`measures`):

==========================  ===========================================================================
``accuracy``                correct / graded
``pte_mean``                mean PTE (:func:`pte_rl.pricing.cost.pte_batch`, the run's cost model)
``generated_mean``          mean generated tokens (sum of decode_i)
``turns_mean``              mean assistant turns
``call_error_rate``         failed call attempts / call attempts (parse failures and tool failures; calls
                            left unrun at max_turns or the budget are not attempts)
``format_collapse_rate``    share of trajectories with a call outside the harness's protocol: a parse
                            failure event (:data:`FORMAT_KINDS`, ``wrong_syntax`` included) or a flag of
                            the ``format_collapse`` detector (:mod:`pte_rl.patterns.format`)
``answer_format_miss_rate`` share of finished trajectories whose answer is not in the harness's declared
                            answer format (None when the harness declares none)
``pte_per_solved``          total PTE / solved trajectories (the cost of a success); likewise
                            ``generated_per_solved``
==========================  ===========================================================================

:func:`overhead` is a harness's change against the reference (training) harness: in PTE and generated
tokens, as means, per solved trajectory, and paired on the tasks both solve (the mean over those tasks
of the difference of their mean PTE on solved samples), so an accuracy drop does not hide a cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pte_rl.patterns.base import FORMAT_KINDS as PATTERN_FORMAT_KINDS
from pte_rl.patterns.format import format_collapse
from pte_rl.pricing.cost import CostModel, TurnTable, pte_batch
from pte_rl.pricing.trajectory import Trajectory
from pte_rl.rollout.env import Environment
from pte_rl.rollout.harness.reskin import formatted_answer
from pte_rl.rollout.loop import RolloutConfig, TaskInfo, run_rollouts

FORMAT_KINDS = PATTERN_FORMAT_KINDS | {"wrong_syntax"}
UNRUN = frozenset({"max_turns", "max_tokens"})
TABLE_COLUMNS = (
    ("harness", "harness", ""), ("n", "n", "d"), ("accuracy", "accuracy", ".3f"), ("pte_mean", "PTE", ",.0f"),
    ("generated_mean", "gen tok", ".1f"), ("turns_mean", "turns", ".2f"), ("call_error_rate", "call err", ".3f"),
    ("format_collapse_rate", "collapse", ".3f"), ("answer_format_miss_rate", "ans fmt miss", ".3f"),
    ("delta_pte_pct", "ΔPTE %", "+.1f"), ("delta_generated_pct", "Δtok %", "+.1f"),
    ("delta_pte_per_solved_pct", "ΔPTE/solved %", "+.1f"), ("paired_delta_pte", "ΔPTE both solve", "+,.0f"),
)


def rollout_split(
    env: Environment, backend: Any, tokenizer: Any, config: RolloutConfig, *, split: str = "eval",
    n: int | None = None, samples: int = 1, batch_size: int = 16, metadata: dict | None = None,
) -> list[Trajectory]:
    """``samples`` episodes on each of the first ``n`` rows of a split, in batches, under the
    environment's harness (a re-skinned environment's; none for a plain one). Ids: ``task_id/k``."""
    rows = env.split(split)
    rows = rows.select(range(min(n, len(rows)))) if n is not None else rows
    episodes = [(row, k) for row in rows for k in range(samples)]
    harness = getattr(env, "harness", None)
    trajectories: list[Trajectory] = []
    for first in range(0, len(episodes), batch_size):
        batch = episodes[first:first + batch_size]
        results = run_rollouts(
            [row["prompt"] for row, _ in batch], backend, tokenizer, env.tools, config, check_answer=env.check_answer,
            tasks=[TaskInfo(row["ground_truth"], row["task_id"]) for row, _ in batch],
            ids=[f"{row['task_id']}/{k}" for row, k in batch], metadata=metadata, harness=harness,
        )
        trajectories += [r.trajectory for r in results]
    return trajectories


def trajectory_ptes(trajectories: Sequence[Trajectory], cost_model: CostModel) -> list[float]:
    """Each trajectory's PTE under ``cost_model``."""
    if not trajectories:
        return []
    return [float(x) for x in pte_batch(TurnTable.from_trajectories(trajectories), cost_model).total]


def measures(trajectories: Sequence[Trajectory], cost_model: CostModel) -> dict[str, Any]:
    """The probe's measures of one harness's trajectories (see the module docstring)."""
    ptes = trajectory_ptes(trajectories, cost_model)
    generated = [t.decode_tokens for t in trajectories]
    graded = [t for t in trajectories if t.correct is not None]
    solved = [i for i, t in enumerate(trajectories) if t.correct is True]
    attempts = [c for t in trajectories for turn in t.turns for c in turn.tool_calls if c.error not in UNRUN]
    finished = [t for t in trajectories if (t.metadata or {}).get("stop") == "answer"]
    answer_format = _answer_format(trajectories)
    misses = [formatted_answer(_final_text(t), answer_format) is None for t in finished] if answer_format else []
    return {
        "n": len(trajectories),
        "graded": len(graded),
        "solved": len(solved),
        "accuracy": _ratio(len(solved), len(graded)),
        "pte_mean": _mean(ptes),
        "generated_mean": _mean(generated),
        "turns_mean": _mean([len(t.turns) for t in trajectories]),
        "tool_calls_mean": _mean([t.num_tool_calls for t in trajectories]),
        "call_attempts": len(attempts),
        "call_error_rate": _ratio(sum(c.error is not None for c in attempts), len(attempts)),
        "format_collapse_rate": _ratio(sum(collapsed(t) for t in trajectories), len(trajectories)),
        "answer_format": answer_format,
        "answer_format_miss_rate": _ratio(sum(misses), len(misses)) if answer_format else None,
        "pte_per_solved": _ratio(sum(ptes), len(solved)),
        "generated_per_solved": _ratio(sum(generated), len(solved)),
    }


def collapsed(trajectory: Trajectory) -> bool:
    """Whether the trajectory holds a call outside its harness's protocol (see the module docstring)."""
    return any(e.kind in FORMAT_KINDS for e in trajectory.events) or bool(format_collapse(trajectory))


def overhead(variant: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """A harness's measures against the reference's: differences, and relative ones in percent."""
    out: dict[str, Any] = {"delta_accuracy": _diff(variant["accuracy"], reference["accuracy"])}
    for key, name in (("pte_mean", "pte"), ("generated_mean", "generated"), ("pte_per_solved", "pte_per_solved"),
                      ("generated_per_solved", "generated_per_solved")):
        out[f"delta_{name}"] = _diff(variant[key], reference[key])
        out[f"delta_{name}_pct"] = _percent(variant[key], reference[key])
    return out


def paired_on_solved(variant: Sequence[Trajectory], reference: Sequence[Trajectory],
                     cost_model: CostModel) -> dict[str, Any]:
    """Mean over tasks solved under both harnesses of (variant - reference) PTE and generated tokens,
    each task's side being the mean over its solved samples."""
    sides = [_solved_by_task(t, cost_model) for t in (variant, reference)]
    tasks = sorted(set(sides[0]) & set(sides[1]))
    pte = [np.mean(sides[0][k][0]) - np.mean(sides[1][k][0]) for k in tasks]
    tokens = [np.mean(sides[0][k][1]) - np.mean(sides[1][k][1]) for k in tasks]
    return {"paired_tasks": len(tasks), "paired_delta_pte": _mean(pte), "paired_delta_generated": _mean(tokens)}


def compare(groups: Mapping[str, Sequence[Trajectory]], cost_model: CostModel, reference: str) -> dict[str, Any]:
    """Measures of every harness, and each one's overhead against ``reference`` (a key of ``groups``)."""
    if reference not in groups:
        raise ValueError(f"reference harness {reference!r} is not among {sorted(groups)}")
    measured = {name: measures(trajectories, cost_model) for name, trajectories in groups.items()}
    rows = []
    for name, trajectories in groups.items():
        row = {"harness": name, **measured[name], **overhead(measured[name], measured[reference]),
               **paired_on_solved(trajectories, groups[reference], cost_model)}
        rows.append(row)
    return {"reference": reference, "gamma": cost_model.gamma, "rows": rows}


def markdown_table(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table (``-`` where a measure is undefined)."""
    header = "| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |"
    rule = "|" + "|".join("---" if spec == "" else "---:" for _, _, spec in TABLE_COLUMNS) + "|"
    lines = [header, rule]
    for row in result["rows"]:
        cells = ["-" if row.get(key) is None else format(row[key], spec) for key, _, spec in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def harness_name(trajectory: Trajectory, default: str) -> str:
    """The harness a trajectory was rolled out under (its metadata), else ``default``."""
    recorded = (trajectory.metadata or {}).get("harness")
    if isinstance(recorded, dict) and isinstance(recorded.get("name"), str):
        return recorded["name"]
    return recorded if isinstance(recorded, str) else default


def _answer_format(trajectories: Sequence[Trajectory]) -> str | None:
    for trajectory in trajectories:
        recorded = (trajectory.metadata or {}).get("harness")
        if isinstance(recorded, dict) and recorded.get("answer_format"):
            return str(recorded["answer_format"])
    return None


def _final_text(trajectory: Trajectory) -> str:
    replies = [m for m in trajectory.messages or [] if m.get("role") == "assistant"]
    return str(replies[-1].get("content") or "") if replies else ""


def _solved_by_task(trajectories: Sequence[Trajectory], cost_model: CostModel) -> dict[str, tuple[list, list]]:
    by_task: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for trajectory, value in zip(trajectories, trajectory_ptes(trajectories, cost_model), strict=True):
        if trajectory.correct is True and trajectory.task_id is not None:
            by_task[trajectory.task_id][0].append(value)
            by_task[trajectory.task_id][1].append(trajectory.decode_tokens)
    return dict(by_task)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / denominator if denominator else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _percent(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else 100.0 * (a - b) / b

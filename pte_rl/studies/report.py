"""The ablation report: held-out accuracy and cost of training runs, per reward preset, over seeds.

Each run directory (as ``recipes/grpo_pte.py`` writes it) holds::

    config.yaml                 the resolved config: reward.preset, reward.overrides, seed, pricing, ...
    metrics.jsonl               per-step training metrics (optional: without it, no training curves)
    eval/summary.json           held-out evaluation after training (see :func:`pte_rl.training.metrics.eval_summary`)
    eval/trajectories.jsonl     its trajectories (interchange format); used when summary.json is absent
    eval_start/summary.json     the same for the starting policy (optional)

Runs are grouped by (reward preset, overrides): the seeds of one setting form a group. Per group and
metric: mean, sample standard deviation (n - 1), min and max over the seeds. Against the baseline
group (``correctness`` by default, without overrides) and against the start-of-training evaluation:

    PTE change       = mean_runs(pte_mean) / mean_baseline(pte_mean) - 1                 (in %)
    accuracy change  = mean_runs(accuracy) - mean_baseline(accuracy)                      (in points)

(vs start: the same with each run's own eval_start, over the runs that have one).

Paired by seed: for every two groups that share at least two seeds, the per-seed differences of the
shared seeds (a seed draws the same training prompts in every group, and every group is evaluated on
the same held-out items, so much of the seed-to-seed noise cancels):

    accuracy difference  = mean over shared seeds of (accuracy_a - accuracy_b)          (in points)
    PTE ratio            = mean over shared seeds of (pte_a / pte_b) - 1                 (in %)

each with a 95% Student-t interval, mean ± t(0.975, n - 1) * std / sqrt(n).

Solved work per token (``efficiency/*``, at PTE budgets shared by every group) and the columns comparable
with published anchors (tool-call change, tool productivity, PTE change on the tasks both arms solve with a
bootstrap interval over tasks): :mod:`pte_rl.studies.anchors`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pte_rl.errors import InputError
from pte_rl.paths import trajectories_file
from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.formats import read_log
from pte_rl.pricing.jsonl import FormatError, read_jsonl, write_atomic
from pte_rl.pricing.resolve import PricingConfig, resolve_pricing
from pte_rl.pricing.trajectory import Trajectory
from pte_rl.studies import anchors
from pte_rl.studies import policy_latency_report as measured
from pte_rl.studies.anchors import cell as _cell
from pte_rl.studies.anchors import ci as _ci
from pte_rl.studies.anchors import signed as _signed
from pte_rl.studies.seed_stats import interval, stats
from pte_rl.training.metrics import eval_summary

# Columns of the main table: (summary key, heading, decimals).
EVAL_COLUMNS = (
    ("accuracy", "accuracy", 3),
    ("pte_mean", "PTE mean", 1),
    ("pte_median", "PTE median", 1),
    ("generated_tokens_mean", "generated tokens", 1),
    ("tool_calls_mean", "tool calls", 2),
)


@dataclass
class Run:
    """One run directory, loaded."""

    path: Path
    preset: str
    overrides: tuple[str, ...]
    seed: int
    eval: dict[str, float]
    eval_start: dict[str, float] | None = None
    steps: list[dict] = field(default_factory=list)
    eval_trajectories: list[Trajectory] = field(default_factory=list)  # eval/trajectories.jsonl, when written
    cost_model: CostModel | None = None  # the run's own, from config.yaml (None without trajectories)

    @property
    def group(self) -> str:
        return self.preset if not self.overrides else f"{self.preset} [{', '.join(self.overrides)}]"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(str(path), exc.lineno, "<file>", f"expected a JSON object ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise FormatError(str(path), None, "<file>", "expected a JSON object")
    return data


def _read_metrics(path: Path) -> list[dict]:
    records = []
    for line_no, record in read_jsonl(path):
        if not isinstance(record.get("step"), int | float):
            raise FormatError(str(path), line_no, "step", "expected an object with a numeric 'step'")
        records.append(record)
    return records


def cost_model_from_config(config: dict, path: Path) -> CostModel:
    """The run's cost model from its saved ``pricing`` section (gamma and delta resolved when it ran),
    through the one resolver, :func:`pte_rl.pricing.resolve.resolve_pricing`."""
    pricing = config.get("pricing")
    if not isinstance(pricing, dict) or not isinstance(pricing.get("gamma"), int | float):
        raise FormatError(str(path), None, "pricing.gamma", "expected a number (to price eval/trajectories.jsonl)")
    known = {k: v for k, v in pricing.items() if k in PricingConfig.__dataclass_fields__}
    return resolve_pricing(PricingConfig(**known), source=f"{path}: pricing")[0]


def _load_eval(directory: Path, config: dict, config_path: Path) -> tuple[dict | None, list[Trajectory]]:
    """The evaluation summary in ``directory`` (its summary.json, else computed from its
    trajectories.jsonl or .jsonl.gz; None when it has neither) and its trajectories ([] without one)."""
    summary, path = directory / "summary.json", trajectories_file(directory)
    trajs = read_log(path) if path.exists() else []  # pte_rl's format, or a ShareGPT / Hermes log
    if path.exists() and not trajs:
        raise FormatError(str(path), None, "<file>", "expected at least one trajectory")
    if summary.exists():
        return _read_json(summary), trajs
    return (eval_summary(trajs, cost_model_from_config(config, config_path)) if trajs else None), trajs


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read one run directory; a missing or malformed file raises InputError / FormatError naming it."""
    import yaml

    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(f"{path}: not a run directory")
    config_path = path / "config.yaml"
    if not config_path.exists():
        raise InputError(f"{path}: missing config.yaml (the resolved config the recipe writes at its start)")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FormatError(str(config_path), None, "<file>", f"expected YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise FormatError(str(config_path), None, "<file>", "expected a mapping")
    reward_section = config.get("reward")
    reward = reward_section if isinstance(reward_section, dict) else {}
    preset = reward.get("preset")
    if not isinstance(preset, str) or not preset:
        raise FormatError(str(config_path), None, "reward.preset", "expected a preset name or path")
    if preset.endswith((".yaml", ".yml")):
        preset = Path(preset).stem
    seed = config.get("seed", (config.get("training") or {}).get("seed"))
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FormatError(str(config_path), None, "seed", f"expected an integer, got {seed!r}")
    overrides = reward.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise FormatError(str(config_path), None, "reward.overrides", "expected a mapping of dotted keys to values")
    evaluation, trajectories = _load_eval(path / "eval", config, config_path)
    if evaluation is None:
        raise InputError(f"{path}: missing eval/summary.json and eval/trajectories.jsonl (the held-out "
                         "evaluation the recipe writes after training)")
    metrics_path = path / "metrics.jsonl"
    return Run(
        path=path, preset=preset, overrides=tuple(sorted(f"{k}={v}" for k, v in overrides.items())), seed=seed,
        eval=evaluation, eval_start=_load_eval(path / "eval_start", config, config_path)[0],
        steps=_read_metrics(metrics_path) if metrics_path.exists() else [], eval_trajectories=trajectories,
        cost_model=cost_model_from_config(config, config_path) if trajectories else None,
    )


def expand_run_dirs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Run directories from the command line: a directory without config.yaml whose subdirectories
    have one (an ablation's output) stands for those; an earlier report's directory is skipped."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir() and not (item / "config.yaml").exists():
            children = sorted(p for p in item.iterdir() if (p / "config.yaml").exists())
            if children:
                found += children
                continue
            if (item / "report.json").exists():
                continue
        found.append(item)
    return found


# --- statistics -------------------------------------------------------------------------------------------


def paired(a: Sequence[Run], b: Sequence[Run]) -> dict[str, Any] | None:
    """Seed-paired comparison of group ``a`` against group ``b`` (None with fewer than 2 shared seeds)."""
    by_seed_a, by_seed_b = {r.seed: r for r in a}, {r.seed: r for r in b}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    acc, ratio = [], []
    for seed in seeds:
        ea, eb = by_seed_a[seed].eval, by_seed_b[seed].eval
        if isinstance(ea.get("accuracy"), int | float) and isinstance(eb.get("accuracy"), int | float):
            acc.append(100.0 * (ea["accuracy"] - eb["accuracy"]))
        if isinstance(ea.get("pte_mean"), int | float) and eb.get("pte_mean"):
            ratio.append(100.0 * (ea["pte_mean"] / eb["pte_mean"] - 1.0))
    if len(seeds) < 2:
        return None
    return {"seeds": seeds, "accuracy_pts": interval(acc), "pte_pct": interval(ratio)}


def _change(runs: Sequence[Run], reference: Sequence[dict]) -> dict[str, float | None]:
    """PTE change (%) and accuracy change (points) of ``runs`` against ``reference`` summaries."""
    out: dict[str, float | None] = {"pte_pct": None, "accuracy_pts": None}
    pte = stats([r.eval.get("pte_mean") for r in runs])["mean"]
    pte_ref = stats([s.get("pte_mean") for s in reference])["mean"]
    if pte is not None and pte_ref:
        out["pte_pct"] = 100.0 * (pte / pte_ref - 1.0)
    acc = stats([r.eval.get("accuracy") for r in runs])["mean"]
    acc_ref = stats([s.get("accuracy") for s in reference])["mean"]
    if acc is not None and acc_ref is not None:
        out["accuracy_pts"] = 100.0 * (acc - acc_ref)
    return out


def summarize(runs: Sequence[Run], baseline: str = "correctness", pte_budget: float | None = None) -> dict[str, Any]:
    """Groups with their per-metric statistics and changes; the content of report.json. ``pte_budget``:
    B_max of the efficiency columns (None: from the baseline's rollouts, :mod:`pte_rl.studies.anchors`)."""
    budgets = anchors.report_budgets(runs, baseline, pte_budget)
    runs = anchors.with_efficiency(runs, budgets)
    pattern_keys = sorted({k for r in runs for k in r.eval
                           if k.startswith("patterns/") and k.endswith("_rate")})
    metric_keys = [key for key, _, _ in EVAL_COLUMNS] + pattern_keys + anchors.efficiency_keys(budgets)
    grouped: dict[tuple, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.preset != baseline, r.preset, r.overrides, r.seed)):
        grouped.setdefault((run.preset, run.overrides), []).append(run)
    base_runs = grouped.get((baseline, ()), [])
    groups = []
    for (preset, overrides), members in grouped.items():
        with_start = [r for r in members if r.eval_start]
        groups.append({
            "group": members[0].group, "preset": preset, "overrides": list(overrides),
            "seeds": [r.seed for r in members], "runs": [str(r.path) for r in members],
            "stats": {key: stats([r.eval.get(key) for r in members]) for key in metric_keys},
            f"vs_{baseline}": _change(members, [r.eval for r in base_runs]) if base_runs else None,
            "vs_start": _change(with_start, [r.eval_start for r in with_start if r.eval_start]) if with_start else None,
            f"anchors_vs_{baseline}": anchors.anchor_columns(members, base_runs) if base_runs else None,
        })
    members_of = {members[0].group: members for members in grouped.values()}
    names = list(members_of)
    pairs = []
    for i, name_a in enumerate(names):
        for name_b in names[i + 1:]:
            # Against the baseline, the baseline is the reference; otherwise the earlier group is.
            first, second = (name_b, name_a) if i == 0 and name_a == baseline else (name_a, name_b)
            comparison = paired(members_of[first], members_of[second])
            if comparison:
                pairs.append({"group": first, "against": second, **comparison})
    return {
        "baseline": baseline, "metrics": metric_keys, "groups": groups, "paired": pairs, "pte_budgets": budgets,
        "runs": [{"path": str(r.path), "group": r.group, "seed": r.seed, "eval": r.eval,
                  "eval_start": r.eval_start} for r in runs],
    }


# --- output ---------------------------------------------------------------------------------------------


def render_markdown(summary: dict, plots: Sequence[str]) -> str:
    baseline = summary["baseline"]
    heads = ["group", "seeds"] + [head for _, head, _ in EVAL_COLUMNS]
    heads += [f"PTE vs {baseline}", f"accuracy vs {baseline}", "PTE vs start", "accuracy vs start"]
    lines = [
        "# Ablation report", "",
        (f"{len(summary['runs'])} runs in {len(summary['groups'])} groups, evaluated on held-out problems. "
         "Cells: mean ± sample std (min–max) over seeds. Changes: PTE in % of the reference mean, "
         "accuracy in points."), "",
        "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads),
    ]
    for group in summary["groups"]:
        vs_base, vs_start = group[f"vs_{baseline}"] or {}, group["vs_start"] or {}
        cells = [group["group"], ",".join(map(str, group["seeds"]))]
        cells += [_cell(group["stats"][key], decimals) for key, _, decimals in EVAL_COLUMNS]
        cells += [_signed(vs_base.get("pte_pct"), "%"), _signed(vs_base.get("accuracy_pts"), " pts"),
                  _signed(vs_start.get("pte_pct"), "%"), _signed(vs_start.get("accuracy_pts"), " pts")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += anchors.markdown_sections(summary)
    pattern_keys = [k for k in summary["metrics"] if k.startswith("patterns/")]
    if pattern_keys:
        names = [k.removeprefix("patterns/").removesuffix("_rate") for k in pattern_keys]
        lines += ["", "## Inefficiency pattern rates", "", "| group | " + " | ".join(names) + " |",
                  "|" + "---|" * (len(names) + 1)]
        for group in summary["groups"]:
            cells = [group["group"]] + [_cell(group["stats"][k], 3) for k in pattern_keys]
            lines.append("| " + " | ".join(cells) + " |")
    if summary.get("paired"):
        lines += ["", "## Paired by seed", "",
                  ("Per shared seed, the difference of each group against another; mean and 95% Student-t "
                   "interval over the shared seeds. An interval that excludes 0 is a difference the seeds "
                   "resolve."), "",
                  "| group | against | shared seeds | accuracy difference | PTE change |", "|---|---|---|---|---|"]
        for pair in summary["paired"]:
            lines.append(f"| {pair['group']} | {pair['against']} | {','.join(map(str, pair['seeds']))} | "
                         f"{_ci(pair['accuracy_pts'], ' pts')} | {_ci(pair['pte_pct'], '%')} |")
    if not any(g["preset"] == baseline and not g["overrides"] for g in summary["groups"]):
        lines += ["", f"No `{baseline}` runs: the changes against it are left out."]
    lines += measured.report_section(summary["latency"]) if summary.get("latency") else []  # --latency FILE
    lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def render_csv(summary: dict) -> str:
    baseline = summary["baseline"]
    header = ["group", "preset", "overrides", "seeds"]
    for key in summary["metrics"]:
        header += [f"{key}_{s}" for s in ("mean", "std", "min", "max", "n")]
    header += [f"pte_change_vs_{baseline}_pct", f"accuracy_change_vs_{baseline}_pts",
               "pte_change_vs_start_pct", "accuracy_change_vs_start_pts"]
    header += [f"{name.removesuffix('_pct')}_vs_{baseline}" + ("_pct" if name.endswith("_pct") else "")
               for name in anchors.CSV_ANCHOR_FIELDS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for group in summary["groups"]:
        row = [group["group"], group["preset"], ";".join(group["overrides"]),
               ";".join(map(str, group["seeds"]))]
        for key in summary["metrics"]:
            row += ["" if group["stats"][key][s] is None else group["stats"][key][s]
                    for s in ("mean", "std", "min", "max", "n")]
        for change in (group[f"vs_{baseline}"] or {}, group["vs_start"] or {}):
            row += ["" if change.get(k) is None else change[k] for k in ("pte_pct", "accuracy_pts")]
        writer.writerow(row + anchors.csv_cells(group.get(f"anchors_vs_{baseline}")))
    return buffer.getvalue()


def _curves(runs: Sequence[Run], groups: Sequence[dict], key: str) -> list[dict]:
    """Per group: mean and std over its runs of ``key`` at every step where some run logged it."""
    curves = []
    by_path = {str(r.path): r for r in runs}
    for group in groups:
        per_step: dict[float, list[float]] = {}
        for path in group["runs"]:
            for record in by_path[path].steps:
                value = record.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    per_step.setdefault(float(record["step"]), []).append(float(value))
        if per_step:
            steps = sorted(per_step)
            curves.append({"label": group["group"], "steps": steps,
                           "mean": [stats(per_step[s])["mean"] for s in steps],
                           "std": [stats(per_step[s])["std"] or 0.0 for s in steps]})
    return curves


def write_plots(runs: Sequence[Run], summary: dict, out: Path) -> list[str]:
    """plots/pareto.png, plots/pte_per_step.png, plots/accuracy_per_step.png, plots/patterns.png."""
    from pte_rl.training import plots

    by_path = {str(r.path): r for r in runs}
    written = []
    points = [{"label": g["group"], "pte": [by_path[p].eval.get("pte_mean", math.nan) for p in g["runs"]],
               "accuracy": [by_path[p].eval.get("accuracy", math.nan) for p in g["runs"]]}
              for g in summary["groups"]]
    starts = [(r.eval_start["pte_mean"], r.eval_start["accuracy"]) for r in runs
              if r.eval_start and "pte_mean" in r.eval_start and "accuracy" in r.eval_start]
    written.append(plots.pareto_plot(points, out / "plots" / "pareto.png", starts=starts))
    for key, name, label in (("pte/mean", "pte_per_step", "mean PTE per rollout"),
                             ("accuracy", "accuracy_per_step", "accuracy of the rollouts")):
        curves = _curves(runs, summary["groups"], key)
        if curves:
            written.append(plots.step_curves(curves, out / "plots" / f"{name}.png", ylabel=label,
                                             title=f"Training: {label} (mean ± std over seeds)"))
    pattern_keys = [k for k in summary["metrics"] if k.startswith("patterns/")]
    if pattern_keys:
        def mean_of(stat: dict) -> float:
            return math.nan if stat["mean"] is None else stat["mean"]

        bars = [{"label": g["group"], "mean": [mean_of(g["stats"][k]) for k in pattern_keys],
                 "std": [g["stats"][k]["std"] or 0.0 for k in pattern_keys]} for g in summary["groups"]]
        names = [k.removeprefix("patterns/").removesuffix("_rate") for k in pattern_keys]
        written.append(plots.grouped_bars(
            names, bars, out / "plots" / "patterns.png", ylabel="rate (held-out)",
            title="Inefficiency pattern rates per group (mean ± std over seeds)"))
    return [str(Path(p).relative_to(out)) for p in written]


def build_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, baseline: str = "correctness",
                 pte_budget: float | None = None, latency: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load every run, then write report.md, report.csv, report.json and plots/ into ``out``; ``latency``:
    a `pte-rl latency` result, whose section and plot join the report."""
    dirs = expand_run_dirs(run_dirs)
    if not dirs:
        raise InputError("no run directories given")
    runs = [load_run(d) for d in dirs]
    summary = summarize(runs, baseline, pte_budget)
    out = Path(out)
    plot_files = write_plots(runs, summary, out)
    if latency is not None:  # `pte-rl latency`'s result: a section (summary["latency"]) and a plot
        plot_files.append(measured.add_to_report(summary, latency, out))
    summary["plots"] = plot_files
    write_atomic(out / "report.json", [json.dumps(summary, indent=2, default=str) + "\n"])
    write_atomic(out / "report.csv", [render_csv(summary)])
    write_atomic(out / "report.md", [render_markdown(summary, plot_files)])
    return summary

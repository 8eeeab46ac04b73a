"""Compare ablation arms of the same preset trained with different settings (turn credit and its screens).

    .venv/bin/python benchmarks/credit_ablation.py runs/credit --baseline trajectory \
        --out benchmarks/results/credit

Each sub-directory of the root is one arm (``runs/credit/turn``, ``runs/credit/trajectory``, ...), holding
``pte-rl ablate`` run directories ``<preset>-s<seed>``. Per arm and seed it reads the held-out
evaluation (``eval/summary.json``: accuracy, mean PTE, generated tokens, tool calls) and the training
log (``metrics.jsonl``: ``pte/mean`` per logging step), and reports per arm the mean, std and range over
seeds, and against the baseline arm the paired differences over the seeds both have (accuracy in
points, PTE in %) with 95% Student-t intervals (pte_rl.studies.seed_stats).

**Speed of the cut**: the training ``pte/mean`` series, smoothed by a centred 3-point mean; its start is
the first logged value, its end the mean of the last three; the run's cut is start - end, and
``step_90`` the first logged step whose smoothed value is at or below start - 0.9 * cut.

Writes ``OUT/ablation.json`` and ``OUT/report.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pte_rl.studies.seed_stats import interval, stats  # noqa: E402

MEASURES = ("accuracy", "pte_mean", "generated_tokens_mean", "tool_calls_mean", "step_90")


def step_90(run: Path) -> float | None:
    """The first logged step at which the smoothed training PTE has made 90% of its final cut."""
    rows = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    series = [(row["step"], row["pte/mean"]) for row in rows if "pte/mean" in row and "step" in row]
    if len(series) < 4:
        return None
    values = [v for _, v in series]
    smooth = [sum(values[max(0, i - 1):i + 2]) / len(values[max(0, i - 1):i + 2]) for i in range(len(values))]
    start, end = values[0], sum(values[-3:]) / 3
    if start <= end:
        return None
    target = start - 0.9 * (start - end)
    return float(next(step for (step, _), value in zip(series, smooth, strict=True) if value <= target))


def read_arm(arm: Path) -> dict[int, dict[str, float | None]]:
    """{seed: measures} of every complete run of the arm."""
    runs = {}
    for run in sorted(arm.iterdir()):
        match = re.fullmatch(r".+-s(\d+)", run.name)
        summary = run / "eval" / "summary.json"
        if not match or not summary.is_file():
            continue
        data = json.loads(summary.read_text())
        runs[int(match.group(1))] = {**{k: data.get(k) for k in MEASURES[:4]}, "step_90": step_90(run)}
    return runs


def paired(arm: dict, baseline: dict, measure: str, relative: bool) -> dict:
    seeds = sorted(set(arm) & set(baseline))
    diffs = []
    for seed in seeds:
        a, b = arm[seed][measure], baseline[seed][measure]
        if a is None or b is None:
            continue
        diffs.append(100 * (a - b) / b if relative else 100 * (a - b) if measure == "accuracy" else a - b)
    return {**interval(diffs), "seeds": seeds}


def fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--baseline", default="trajectory")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "credit")
    args = parser.parse_args()
    arms = {path.name: read_arm(path) for path in sorted(args.root.iterdir()) if path.is_dir()}
    arms = {name: runs for name, runs in arms.items() if runs}
    base = arms[args.baseline]
    result: dict = {"baseline": args.baseline, "arms": {}}
    lines = ["| arm | seeds | accuracy | mean PTE | generated tokens | tool calls | step_90 | PTE vs baseline | "
             "accuracy vs baseline (pts) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, runs in arms.items():
        summary = {m: stats([r[m] for r in runs.values()]) for m in MEASURES}
        entry: dict = {"seeds": sorted(runs), "stats": summary, "runs": runs}
        if name != args.baseline:
            entry["paired_pte_pct"] = paired(runs, base, "pte_mean", relative=True)
            entry["paired_accuracy_pts"] = paired(runs, base, "accuracy", relative=False)
            entry["paired_step_90"] = paired(runs, base, "step_90", relative=False)
        result["arms"][name] = entry
        p, a = entry.get("paired_pte_pct"), entry.get("paired_accuracy_pts")
        versus = (f"{fmt(p['mean'], 1)}% ({fmt(p['low'], 1)} to {fmt(p['high'], 1)})" if p else "",
                  f"{fmt(a['mean'], 2)} ({fmt(a['low'], 2)} to {fmt(a['high'], 2)})" if a else "")
        accuracy = summary["accuracy"]
        lines.append(
            f"| `{name}` | {len(runs)} | {fmt(accuracy['mean'], 4)} ± {fmt(accuracy['std'], 4)} | "
            f"{fmt(summary['pte_mean']['mean'], 1)} ± {fmt(summary['pte_mean']['std'], 1)} | "
            f"{fmt(summary['generated_tokens_mean']['mean'], 1)} | {fmt(summary['tool_calls_mean']['mean'], 2)} | "
            f"{fmt(summary['step_90']['mean'], 1)} | {versus[0]} | {versus[1]} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    report = "\n".join(lines) + "\n"
    (args.out / "report.md").write_text(f"# Turn credit: arms against `{args.baseline}`\n\n{report}")
    print(report)


if __name__ == "__main__":
    main()

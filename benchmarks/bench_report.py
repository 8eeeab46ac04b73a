"""Wall time of `pte-rl report` on an ablation of 40 runs (4 arms x 10 seeds; target: under a minute).

    .venv/bin/python benchmarks/bench_report.py                  # synthetic runs shaped like arith's
    .venv/bin/python benchmarks/bench_report.py runs/arith4      # real run directories instead

Without run directories it first writes 40 synthetic ones as recipes/grpo_pte.py does (config.yaml,
metrics.jsonl with 16 logged steps, eval/ and eval_start/ with summary.json and 800 held-out trajectories
each, the task ids shared across runs so that the paired and bootstrap columns have work to do); the
arms differ in their mix of direct answers, calculator calls and long `python` reports, and about 1% of
answers are wrong. Then it times `build_report` (every table, the anchors' bootstrap intervals, the
plots) as `pte-rl report` runs it, and writes the figures to ``benchmarks/results/report_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ARMS = ("correctness", "pte", "tokens", "tool_calls")
ITEMS, SAMPLES, SEEDS = 200, 4, 10


def synthetic_runs(root: Path) -> list[Path]:
    """40 run directories: 4 arms x 10 seeds, each with a start and a final evaluation of 800 trajectories."""
    import numpy as np
    import yaml
    from bench_policy_latency import synthetic_trajectory

    from pte_rl.pricing.cost import CostModel
    from pte_rl.pricing.jsonl import write_atomic, write_trajectories
    from pte_rl.training.metrics import eval_summary

    cost = CostModel(gamma=0.005)
    dirs = []
    for arm in ARMS:
        for seed in range(SEEDS):
            run = root / f"{arm}-s{seed}"
            config = {"reward": {"preset": arm, "overrides": {}}, "seed": seed,
                      "pricing": {"gamma": 0.005, "cache": "evict", "attention": "paper", "delta": 0.0,
                                  "hardware": "h100_pcie", "mode": "paper"}}
            run.mkdir(parents=True)
            (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            rng = np.random.default_rng([seed, len(arm)])
            steps = [{"step": s, "reward": float(rng.random()), "pte/mean": float(500 + 400 * rng.random()),
                      "accuracy": float(0.98 + 0.02 * rng.random())} for s in range(5, 85, 5)]
            write_atomic(run / "metrics.jsonl", [json.dumps(step) + "\n" for step in steps])
            for split, mix in (("eval_start", "correctness"), ("eval", arm)):
                trajectories = []
                for k in range(ITEMS * SAMPLES):
                    trajectory = synthetic_trajectory(rng, mix, k)
                    trajectory.task_id = f"arith-{k // SAMPLES}"
                    trajectory.correct = bool(rng.random() > 0.01)
                    trajectories.append(trajectory)
                (run / split).mkdir()
                write_trajectories(run / split / "trajectories.jsonl", trajectories)
                summary = eval_summary(trajectories, cost)
                summary.update(split="eval", samples=SAMPLES, temperature=0.7)
                write_atomic(run / split / "summary.json", [json.dumps(summary, indent=1, sort_keys=True)])
            dirs.append(run)
    return dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="*", help="run directories (default: 40 synthetic ones)")
    parser.add_argument("--json-out", default=str(ROOT / "benchmarks" / "results" / "report_speed.json"))
    args = parser.parse_args()

    from pte_rl.pricing.jsonl import write_atomic
    from pte_rl.studies.report import build_report

    with tempfile.TemporaryDirectory(prefix="bench_report.") as tmp:
        started = time.perf_counter()
        dirs = args.run_dirs or synthetic_runs(Path(tmp) / "runs")
        written_s = time.perf_counter() - started
        started = time.perf_counter()
        summary = build_report([str(d) for d in dirs], str(Path(tmp) / "report"))
        report_s = time.perf_counter() - started
    runs = len(summary.get("runs", []))
    figures = {"source": "synthetic" if not args.run_dirs else [str(d) for d in args.run_dirs], "runs": runs,
               "trajectories_per_evaluation": ITEMS * SAMPLES if not args.run_dirs else None,
               "setup_s": round(written_s, 1), "report_s": round(report_s, 1), "target_s": 60.0,
               "within_target": report_s < 60.0, "cpus": os.cpu_count(), "machine": platform.machine()}
    print(f"pte-rl report on {runs} runs: {report_s:.1f} s ({'under' if report_s < 60 else 'OVER'} the 60 s target; "
          f"writing the runs took {written_s:.1f} s), {os.cpu_count()} CPUs")
    write_atomic(args.json_out, [json.dumps(figures, indent=2) + "\n"])
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()

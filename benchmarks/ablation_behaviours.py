"""Which paths each arm of an `arith` or `facts` ablation ends on, and how accurate each path is.

Reads the held-out trajectories (``<run>/eval/trajectories.jsonl``, or ``eval_start/`` with
``--split eval_start``: before training) of every run given, labels each trajectory with its
environment's ``classify_behaviour`` (the environment named in the run's ``config.yaml``) and groups
them by reward preset (the run name up to ``-s<seed>``) and item class: for `arith` easy = level 1,
hard = the rest (the level of each held-out item comes from the environment the run was trained with,
rebuilt from its ``config.yaml``); for `facts` one = one look-up, pair = two independent look-ups
(``pair-founded`` questions); for any other environment, all. Prints,
per preset and class, each behaviour's share of the samples, its accuracy and its mean PTE (priced
with the run's own ``pricing``), pooled over seeds, so a
change in held-out accuracy can be traced to the paths a reward moved the policy to.

``--by-digits`` splits each class by the digit counts of the years in the gold answer (``pair:4+3``:
a four-digit year, then a three-digit one), for an answer whose words are all numbers (else ``other``),
to tell a path that fails from a kind of answer that fails on it.

``--subset one:4,pair:4+4`` (classes as printed; a ``:`` in one implies ``--by-digits``) compares
``--arm`` (default ``pte``) with every other arm on those classes alone: per arm, accuracy and mean PTE
over seeds; per other arm, the paired per-seed change of accuracy (points) and of mean PTE (%), with
95% Student-t intervals over the seeds both arms ran.

    .venv/bin/python benchmarks/ablation_behaviours.py runs/ablate/*-s*/ [--by-digits] [--out FILE.json]
    .venv/bin/python benchmarks/ablation_behaviours.py runs/facts/*-s*/ --subset one:4,pair:4+4 [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def item_classes(run: Path) -> tuple[str, dict[str, str]]:
    """(environment name, task_id -> item class) over the held-out split of the run's own environment."""
    import yaml

    from pte_rl.rollout.env import load_environment

    config = yaml.safe_load((run / "config.yaml").read_text())
    env_section = config.get("env") or {}  # the recipe saves env: {name, options, max_turns}
    name = env_section.get("name", "arith")
    env = load_environment(name, **(env_section.get("options") or {}))
    ids = env.eval_dataset["task_id"]
    if name == "arith":
        return name, {t: "easy" if level == 1 else "hard" for t, level in zip(ids, env.eval_dataset["level"],
                                                                               strict=True)}
    if name == "facts":
        return name, {t: "pair" if t.endswith("-pair-founded") else "one" for t in ids}
    return name, dict.fromkeys(ids, "all")


def digits(ground_truth: object) -> str:
    """``4+3`` for ``"1176 and 916"``: the digit count of each number in the answer (``and`` dropped),
    ``other`` when any other word is left or there is no number."""
    words = [w for w in str(ground_truth).replace(",", " ").split() if w.lower() != "and"]
    if not words or not all(w.isdigit() for w in words):
        return "other"
    return "+".join(str(len(w)) for w in words)


def tally(run_dirs: list[Path], split: str = "eval", by_digits: bool = False) -> dict:
    import yaml

    from pte_rl.paths import trajectories_file
    from pte_rl.pricing.cost import pte
    from pte_rl.pricing.jsonl import iter_trajectories
    from pte_rl.studies.report import cost_model_from_config
    from pte_rl.tiny.data import environment_module

    counts: dict = defaultdict(lambda: defaultdict(lambda: [0, 0, 0.0]))  # samples, correct, PTE
    for run in run_dirs:
        preset = re.sub(r"-s\d+$", "", run.name)
        path = trajectories_file(run / split)
        if not path.is_file():
            raise SystemExit(f"{path}: missing (the run has no held-out evaluation)")
        env_name, classes = item_classes(run)
        cost_model = cost_model_from_config(yaml.safe_load((run / "config.yaml").read_text()), run / "config.yaml")
        classify = getattr(environment_module(env_name), "classify_behaviour", None)
        if classify is None:
            raise SystemExit(f"{run / 'config.yaml'}: environment {env_name!r} has no classify_behaviour")
        for trajectory in iter_trajectories(path):
            item_class = classes[trajectory.task_id]
            if by_digits:
                item_class = f"{item_class}:{digits(trajectory.ground_truth)}"
            key = f"{item_class}/{classify(trajectory.messages)}"
            cost = pte(trajectory, cost_model).total
            for k in (key, f"{key.split('/')[0]}/*"):
                counts[preset][k][0] += 1
                counts[preset][k][1] += bool(trajectory.correct)
                counts[preset][k][2] += cost
    table = {}
    for preset, rows in counts.items():
        totals = {k.split("/")[0]: n for k, (n, _, _) in rows.items() if k.endswith("/*")}
        table[preset] = {
            key: {"n": n, "share": n / totals[key.split("/")[0]], "accuracy": hits / n, "pte": cost / n}
            for key, (n, hits, cost) in sorted(rows.items())
        }
    return table


def subset(run_dirs: list[Path], classes: list[str], arm: str = "pte", split: str = "eval") -> dict:
    """``arm`` against every other arm on the items of ``classes`` alone (see the module docstring)."""
    from pte_rl.studies.seed_stats import interval

    by_digits = any(":" in c for c in classes)
    per_run: dict[str, dict[int, dict]] = defaultdict(dict)  # preset -> seed -> {n, accuracy, pte}
    for run in run_dirs:
        match = re.search(r"^(.*)-s(\d+)$", run.name)
        if match is None:
            raise SystemExit(f"{run}: expected a run named <preset>-s<seed>")
        rows = next(iter(tally([run], split, by_digits).values()))
        chosen = [rows[f"{c}/*"] for c in classes if f"{c}/*" in rows]
        n = sum(r["n"] for r in chosen)
        if n == 0:
            raise SystemExit(f"{run}: no held-out item of the classes {classes}")
        per_run[match.group(1)][int(match.group(2))] = {
            "n": n, "accuracy": sum(r["accuracy"] * r["n"] for r in chosen) / n,
            "pte": sum(r["pte"] * r["n"] for r in chosen) / n}
    if arm not in per_run:
        raise SystemExit(f"--arm {arm}: no run of it among {sorted(per_run)}")
    arms = {preset: {"seeds": sorted(runs), "n": [runs[s]["n"] for s in sorted(runs)],
                     "accuracy": interval([r["accuracy"] for r in runs.values()]),
                     "pte": interval([r["pte"] for r in runs.values()])} for preset, runs in sorted(per_run.items())}
    paired = {}
    for other, runs in sorted(per_run.items()):
        seeds = sorted(set(runs) & set(per_run[arm]))
        if other == arm or not seeds:
            continue
        points = [100 * (per_run[arm][s]["accuracy"] - runs[s]["accuracy"]) for s in seeds]
        change = [100 * (per_run[arm][s]["pte"] / runs[s]["pte"] - 1) for s in seeds]
        paired[other] = {"seeds": seeds, "accuracy_points": interval(points), "pte_change_pct": interval(change),
                         "per_seed_accuracy_points": points, "per_seed_pte_change_pct": change}
    return {"classes": classes, "arm": arm, "arms": arms, "paired": paired}


def _interval_text(i: dict, unit: str) -> str:
    if i["low"] is None:
        return f"{i['mean']:+.2f}{unit}"
    return f"{i['mean']:+.2f}{unit} ({i['low']:+.2f} to {i['high']:+.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (each with eval/trajectories.jsonl)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as JSON")
    parser.add_argument("--split", choices=("eval", "eval_start"), default="eval",
                        help="the evaluation after training (eval) or before it (eval_start)")
    parser.add_argument("--by-digits", action="store_true",
                        help="split each class by the digit counts of the gold answer's years (pair:4+3)")
    parser.add_argument("--subset", default=None, metavar="CLASS,CLASS",
                        help="compare --arm with the others on these item classes alone (one:4,pair:4+4)")
    parser.add_argument("--arm", default="pte", help="the arm --subset compares with the others (default pte)")
    args = parser.parse_args(argv)
    runs = [r for r in args.runs if r.is_dir()]
    if args.subset:
        result = subset(runs, [c for c in args.subset.split(",") if c], args.arm, args.split)
        for preset, row in result["arms"].items():
            print(f"{preset}: {len(row['seeds'])} seeds, {row['n'][0]} samples per run, accuracy "
                  f"{row['accuracy']['mean']:.4f}, mean PTE {row['pte']['mean']:.0f}")
        for other, row in result["paired"].items():
            print(f"{args.arm} vs {other} (paired, {len(row['seeds'])} seeds): accuracy "
                  f"{_interval_text(row['accuracy_points'], ' pts')}, mean PTE "
                  f"{_interval_text(row['pte_change_pct'], '%')}; per seed "
                  + ", ".join(f"{x:+.1f}" for x in row["per_seed_pte_change_pct"]) + "%")
        table = result
    else:
        table = tally(runs, args.split, args.by_digits)
        for preset, rows in sorted(table.items()):
            print(f"\n{preset}: class/behaviour       n   share  accuracy  mean PTE")
            for key, row in rows.items():
                print(f"  {key:<20}{row['n']:>6}{row['share']:>8.2f}{row['accuracy']:>9.3f}{row['pte']:>10.0f}")
    if args.out:
        from pte_rl.pricing.jsonl import write_atomic

        write_atomic(args.out, [json.dumps(table, indent=2) + "\n"])
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

    .venv/bin/python benchmarks/ablation_behaviours.py runs/ablate/*-s*/ [--out FILE.json]
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


def tally(run_dirs: list[Path], split: str = "eval") -> dict:
    import yaml

    from pte_rl.pricing.cost import pte
    from pte_rl.pricing.jsonl import iter_trajectories
    from pte_rl.studies.report import cost_model_from_config
    from pte_rl.tiny.data import environment_module

    counts: dict = defaultdict(lambda: defaultdict(lambda: [0, 0, 0.0]))  # samples, correct, PTE
    for run in run_dirs:
        preset = re.sub(r"-s\d+$", "", run.name)
        path = run / split / "trajectories.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path}: missing (the run has no held-out evaluation)")
        env_name, classes = item_classes(run)
        cost_model = cost_model_from_config(yaml.safe_load((run / "config.yaml").read_text()), run / "config.yaml")
        classify = getattr(environment_module(env_name), "classify_behaviour", None)
        if classify is None:
            raise SystemExit(f"{run / 'config.yaml'}: environment {env_name!r} has no classify_behaviour")
        for trajectory in iter_trajectories(path):
            key = f"{classes[trajectory.task_id]}/{classify(trajectory.messages)}"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (each with eval/trajectories.jsonl)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as JSON")
    parser.add_argument("--split", choices=("eval", "eval_start"), default="eval",
                        help="the evaluation after training (eval) or before it (eval_start)")
    args = parser.parse_args(argv)
    table = tally([r for r in args.runs if r.is_dir()], args.split)
    for preset, rows in sorted(table.items()):
        print(f"\n{preset}: class/behaviour   n   share  accuracy  mean PTE")
        for key, row in rows.items():
            print(f"  {key:<16}{row['n']:>6}{row['share']:>8.2f}{row['accuracy']:>9.3f}{row['pte']:>10.0f}")
    if args.out:
        from pte_rl.pricing.jsonl import write_atomic

        write_atomic(args.out, [json.dumps(table, indent=2) + "\n"])
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

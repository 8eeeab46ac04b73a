"""The harness-mismatch experiment's table: probes of trained policies, per arm, over seeds.

    .venv/bin/python benchmarks/harness_experiment.py fixed='runs/probe/fixed-s*' randomised='runs/probe/rand-s*' \
        --out benchmarks/results/harness

Each ``ARM=GLOB`` names the `pte-rl harness` output directories (one per seed: ``harness.json``) of one arm.
Per arm and harness, over the seeds: mean and sample std of accuracy, mean PTE, generated tokens, call
error rate and format-collapse rate, and the overhead against the same seed's ``training`` harness
(accuracy change in points; PTE, generated tokens and PTE per solved task in percent). The mismatch
overhead on unseen variants (the built-ins marked held out, ``heldout_*``, which no training run draws) is
each seed's mean over them, then mean and 95% Student-t interval over seeds. Writes ``OUT/harness_experiment.md``,
``.json`` and ``.png`` (accuracy and PTE overhead per harness and arm).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEASURES = ("accuracy", "pte_mean", "generated_mean", "call_error_rate", "format_collapse_rate")
OVERHEADS = ("delta_accuracy", "delta_pte_pct", "delta_generated_pct", "delta_pte_per_solved_pct")


def stats(values: list[float]) -> dict:
    """Mean, sample std, n and the 95% Student-t half-width of ``values`` (pte_rl.studies.seed_stats)."""
    from pte_rl.studies.seed_stats import interval
    from pte_rl.studies.seed_stats import stats as seed_stats

    summary, bounds = seed_stats(values), interval(values)
    half = None if bounds["high"] is None or bounds["mean"] is None else bounds["high"] - bounds["mean"]
    return {"mean": summary["mean"], "std": summary["std"] if summary["n"] > 1 else (0.0 if summary["n"] else None),
            "n": summary["n"], "ci": half}


def load_arm(pattern: str) -> list[dict]:
    """The probe results of one arm's seeds, each as {harness: row}."""
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise SystemExit(f"harness_experiment.py: {pattern}: no probe directories")
    seeds = []
    for path in paths:
        file = Path(path) / "harness.json"
        if not file.is_file():
            raise SystemExit(f"harness_experiment.py: {file}: missing (run pte-rl harness --out {path})")
        result = json.loads(file.read_text())
        seeds.append({"path": path, "rows": {row["harness"]: row for row in result["rows"]}})
    return seeds


def summarise(arms: dict[str, list[dict]]) -> dict:
    out: dict = {"arms": {}}
    for arm, seeds in arms.items():
        harnesses = list(seeds[0]["rows"])
        table = {h: {key: stats([s["rows"][h].get(key) for s in seeds if h in s["rows"]])
                     for key in MEASURES + OVERHEADS} for h in harnesses}
        unseen = [h for h in harnesses if h.startswith("heldout_")]
        per_seed = {key: [sum(s["rows"][h][key] for h in unseen) / len(unseen) for s in seeds
                          if all(s["rows"].get(h, {}).get(key) is not None for h in unseen)]
                    for key in ("delta_accuracy", "delta_pte_pct", "delta_generated_pct", "accuracy")}
        out["arms"][arm] = {"seeds": [s["path"] for s in seeds], "harnesses": table, "unseen": unseen,
                            "unseen_overhead": {k: stats(v) for k, v in per_seed.items()}}
    return out


def _fmt(cell: dict, scale: float = 1.0, digits: int = 3, signed: bool = False) -> str:
    if cell["mean"] is None:
        return "-"
    sign = "+" if signed else ""
    return f"{cell['mean'] * scale:{sign}.{digits}f} ± {cell['std'] * scale:.{digits}f}"


def markdown(summary: dict) -> str:
    lines = []
    for arm, data in summary["arms"].items():
        lines += [f"### {arm} ({len(data['seeds'])} seeds)", "",
                  "| harness | accuracy | PTE | gen tok | call err | collapse | Δacc pts | ΔPTE % | Δtok % "
                  "| ΔPTE/solved % |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for harness, row in data["harnesses"].items():
            lines.append(
                f"| {harness} | {_fmt(row['accuracy'])} | {_fmt(row['pte_mean'], digits=0)} | "
                f"{_fmt(row['generated_mean'], digits=1)} | {_fmt(row['call_error_rate'], digits=2)} | "
                f"{_fmt(row['format_collapse_rate'], digits=2)} | {_fmt(row['delta_accuracy'], 100, 1, True)} | "
                f"{_fmt(row['delta_pte_pct'], digits=1, signed=True)} | "
                f"{_fmt(row['delta_generated_pct'], digits=1, signed=True)} | "
                f"{_fmt(row['delta_pte_per_solved_pct'], digits=1, signed=True)} |")
        lines.append("")
    lines += ["### Overhead on the unseen variants (mean over the held-out variants per seed; mean and 95% interval "
              "over seeds)", "", "| arm | accuracy | Δacc pts | ΔPTE % | Δtok % |", "|---|---:|---:|---:|---:|"]
    for arm, data in summary["arms"].items():
        o = data["unseen_overhead"]

        def ci(cell: dict, scale: float = 1.0, digits: int = 1) -> str:
            if cell["mean"] is None:
                return "-"
            half = f" ± {cell['ci'] * scale:.{digits}f}" if cell["ci"] is not None else ""
            return f"{cell['mean'] * scale:+.{digits}f}{half}"

        lines.append(f"| {arm} | {o['accuracy']['mean']:.3f} | {ci(o['delta_accuracy'], 100)} | "
                     f"{ci(o['delta_pte_pct'])} | {ci(o['delta_generated_pct'])} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(summary["arms"])
    harnesses = list(summary["arms"][arms[0]]["harnesses"])
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        rows = summary["arms"][arm]["harnesses"]
        xs = [k + (i - (len(arms) - 1) / 2) * width for k in range(len(harnesses))]
        for axis, key in zip(axes, ("accuracy", "delta_pte_pct"), strict=True):
            means = [rows[h][key]["mean"] if h in rows and rows[h][key]["mean"] is not None else float("nan")
                     for h in harnesses]
            errs = [rows[h][key]["std"] if h in rows and rows[h][key]["std"] is not None else 0.0 for h in harnesses]
            axis.bar(xs, means, width, yerr=errs, label=arm, capsize=2)
    axes[0].set_ylabel("held-out accuracy")
    axes[1].set_ylabel("PTE vs training harness (%)")
    axes[1].axhline(0, color="black", linewidth=0.6)
    axes[1].set_xticks(range(len(harnesses)), harnesses, rotation=30, ha="right")
    axes[0].legend()
    fig.suptitle("Harness probe of trained policies (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="+", metavar="ARM=GLOB")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    arms = {}
    for item in args.arms:
        name, sep, pattern = item.partition("=")
        if not sep:
            raise SystemExit(f"harness_experiment.py: {item!r}: expected ARM=GLOB")
        arms[name] = load_arm(pattern)
    summary = summarise(arms)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from pte_rl.pricing.jsonl import write_atomic

    text = markdown(summary)
    write_atomic(out / "harness_experiment.md", [text])
    write_atomic(out / "harness_experiment.json", [json.dumps(summary, indent=1) + "\n"])
    plot(summary, out / "harness_experiment.png")
    print(text, end="")
    print(f"wrote {out}/harness_experiment.md, .json, .png")


if __name__ == "__main__":
    main()

"""How far the PTE rebuilt from TRL's plain completions is from the exact accounting, in TRL's own tool loop.

Runs examples/trl_native_grpo.py (the tiny policy by default) with ``tools=[...]`` (seed 0) and with
``environment_factory=`` (seed 1: other prompts and samples), captures every batch TRL's ``_generate`` returns
(:func:`pte_rl.rollout.trl_adapter.capture_generations`) and prices each trajectory twice under one cost model:

* **exact**: the ids TRL really fed and got back; a turn is a run of sampled ids (``tool_mask`` 1), its
  context every id before the run, its decode the run's length (:func:`pte_rl.rollout.trl_adapter.turns_from_ids`);
* **rebuilt**: what the PTE reward computes from the same call's ``prompts``, ``completions`` and
  ``completion_ids`` with the tokenizer and the tools (:func:`pte_rl.rewards.records.trajectories`).

Prints per-turn differences (rebuilt - exact, context and decode tokens) and per-trajectory PTE differences
(relative and absolute), and writes them to ``benchmarks/results/trl_native/agreement.json``.

    .venv/bin/python benchmarks/trl_native_agreement.py [--steps 20] [--model DIR] [--gamma 0.01]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from trl_native_grpo import build_trainer  # noqa: E402

from pte_rl.pricing.cost import CostModel, pte  # noqa: E402
from pte_rl.rewards.records import trajectories as rebuild  # noqa: E402
from pte_rl.rollout.trl_adapter import capture_generations, text_tokenizer  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "trl_native" / "agreement.json"


def run_variant(
    steps: int, model: str | None, environment: bool, output_dir: str, seed: int
) -> tuple[list, list, float]:
    """(exact, rebuilt) trajectories of ``steps`` real GRPO steps, and the seconds the training took."""
    argv = ["--steps", str(steps), "--output-dir", output_dir, "--seed", str(seed)]
    argv += ["--model", model] if model else []
    trainer = build_trainer(argv + (["--environment"] if environment else []))
    capture = capture_generations(trainer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    tokenizer, tools = text_tokenizer(trainer), trainer.reward_funcs[1].tools
    rebuilt = []
    for batch in capture.batches:
        rows, _ = rebuild(batch["prompts"], batch["completions"], batch["completion_ids"], {}, tokenizer, tools)
        rebuilt.extend(rows)
    return capture.trajectories(), rebuilt, seconds


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean": float(a.mean()), "mean_abs": float(np.abs(a).mean()),
            "max_abs": float(np.abs(a).max()), "p50_abs": float(np.percentile(np.abs(a), 50)),
            "p90_abs": float(np.percentile(np.abs(a), 90)), "p99_abs": float(np.percentile(np.abs(a), 99)),
            "exact_share": float((a == 0).mean())}


def compare(exact: list, rebuilt: list, cost_model: CostModel) -> dict:
    """Per-turn and per-trajectory differences, rebuilt minus exact (turns matched by position)."""
    turns: dict[str, list[float]] = collections.defaultdict(list)
    rel, absolute, turn_count_mismatch, unscored = [], [], 0, 0
    for ex, rb in zip(exact, rebuilt, strict=True):
        if rb is None:
            unscored += 1
            continue
        if len(ex.turns) != len(rb.turns):
            turn_count_mismatch += 1
        last = len(ex.turns) - 1
        for k, (a, b) in enumerate(zip(ex.turns, rb.turns, strict=False)):
            kind = "single" if last == 0 else ("last" if k == last else "middle")
            turns[f"context/{'first' if k == 0 else 'later'}"].append(b.context_tokens - a.context_tokens)
            turns[f"decode/{kind}"].append(b.decode_tokens - a.decode_tokens)
        exact_pte, rebuilt_pte = pte(ex, cost_model).total, pte(rb, cost_model).total
        absolute.append(rebuilt_pte - exact_pte)
        rel.append((rebuilt_pte - exact_pte) / exact_pte if exact_pte else 0.0)
    return {
        "trajectories": len(exact), "unscored": unscored, "turn_count_mismatch": turn_count_mismatch,
        "turns": {key: stats(values) for key, values in sorted(turns.items())},
        "pte_relative": stats(rel), "pte_absolute": stats(absolute),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="GRPO steps per variant (8 trajectories each)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--gamma", type=float, default=0.01)
    parser.add_argument("--output-dir", default="/tmp/pte_rl_trl_native")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    cost_model = CostModel(gamma=args.gamma)
    result: dict = {"gamma": args.gamma, "steps": args.steps, "model": args.model or "tiny policy", "variants": {}}
    pooled_exact, pooled_rebuilt = [], []
    for seed, (name, environment) in enumerate((("tools", False), ("environment_factory", True))):
        exact, rebuilt, seconds = run_variant(args.steps, args.model, environment, f"{args.output_dir}/{name}", seed)
        pooled_exact += exact
        pooled_rebuilt += rebuilt
        result["variants"][name] = {**compare(exact, rebuilt, cost_model), "train_seconds": round(seconds, 2)}
    result["pooled"] = compare(pooled_exact, pooled_rebuilt, cost_model)
    for name, block in [*result["variants"].items(), ("pooled", result["pooled"])]:
        r = block["pte_relative"]
        print(f"{name}: {block['trajectories']} trajectories, PTE rebuilt/exact - 1: mean {r['mean']:+.4%}, "
              f"max |.| {r['max_abs']:.4%}, p99 |.| {r['p99_abs']:.4%}, exact {r['exact_share']:.0%}; "
              f"turn-count mismatches {block['turn_count_mismatch']}, unscored {block['unscored']}")
        for key, s in block["turns"].items():
            print(f"    {key:16s} n={s['n']:4d}  mean {s['mean']:+.3f}  max |.| {s['max_abs']:.0f}  "
                  f"exact {s['exact_share']:.0%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

"""Wall time of `pte-rl latency`: 100 held-out trajectories per arm, 4 arms, concurrency 1 and 8 (target: under
10 minutes on 2 cores).

    .venv/bin/python benchmarks/bench_policy_latency.py runs/arith4             # trained runs (a directory of them)
    .venv/bin/python benchmarks/bench_policy_latency.py --threads 2             # synthetic run directories

Replays with the library's defaults (the random Qwen2.5-1.5B-architecture model at 4 layers x 192, the
transformers engine on the CPU, one repeat per turn, calibration on the 4 x 3 grid with 3 repeats) and
prints the wall time of the calibration, of each concurrency's replay, and in all. Without run
directories it writes synthetic ones first (4 arms x 3 seeds x 200 trajectories shaped like arith's
held-out ones: a 277-token prompt, then 0-2 tool calls answered with 16 or ~513 tokens; the arms differ
in their mix). Writes the figures to ``benchmarks/results/policy_latency/bench.json`` (``--json-out``).
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

# Per arm: (share of 1-turn answers, share of 2-turn trajectories with the long tool report); the rest
# make 2-3 turns with short tool responses.
ARMS = {"correctness": (0.15, 0.70), "pte": (0.45, 0.25), "tokens": (0.30, 0.50), "tool_calls": (0.60, 0.30)}


def synthetic_trajectory(rng, arm: str, index: int):
    """One arith-like trajectory of ``arm``'s mix (turn shapes only matter to the replay)."""
    from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn

    direct, long_tool = ARMS[arm]
    draw = rng.random()
    turns_n = 1 if draw < direct else 2 if draw < direct + long_tool else int(rng.integers(2, 4))
    response = 513 if direct <= draw < direct + long_tool else 16
    context, turns, messages = 277 + int(rng.integers(0, 2)), [], [{"role": "user", "content": "q"}]
    for turn in range(turns_n):
        final = turn == turns_n - 1
        decode = int(rng.integers(5, 9)) if final else int(rng.integers(20, 38))
        calls = [] if final else [ToolCall(name="python", response_tokens=response)]
        turns.append(Turn(context, decode, tool_calls=calls, tool_tokens=response if calls else 0))
        messages.append({"role": "assistant", "content": "a"})
        messages += [{"role": "tool", "content": "r"} for _ in calls]
        context += decode + (response if calls else 0)
    return Trajectory(turns, id=f"{arm}-{index}", task_id=f"arith-{index}", correct=True, messages=messages)


def synthetic_runs(root: Path, seeds: int = 3, per_run: int = 200) -> list[Path]:
    """Run directories (config.yaml + eval/trajectories.jsonl) for every arm of :data:`ARMS` x ``seeds``."""
    import numpy as np
    import yaml

    from pte_rl.pricing.jsonl import write_trajectories

    dirs = []
    for arm in ARMS:
        for seed in range(seeds):
            run = root / f"{arm}-s{seed}"
            (run / "eval").mkdir(parents=True)
            config = {"reward": {"preset": arm, "overrides": {}}, "seed": seed,
                      "pricing": {"gamma": 0.005, "cache": "evict", "attention": "paper", "delta": 0.0}}
            (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            rng = np.random.default_rng([seed, len(arm)])
            write_trajectories(run / "eval" / "trajectories.jsonl",
                               [synthetic_trajectory(rng, arm, k) for k in range(per_run)])
            dirs.append(run)
    return dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="*", help="run directories (default: synthetic ones)")
    parser.add_argument("--per-arm", type=int, default=100)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--calibration", help="a calibration record to load instead of calibrating")
    parser.add_argument("--json-out", default=str(ROOT / "benchmarks" / "results" / "policy_latency" / "bench.json"))
    args = parser.parse_args()

    from pte_rl.pricing.jsonl import write_atomic
    from pte_rl.studies.policy_latency import load_runs, make_replay_engine, run_policy_latency

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_policy_latency.") as tmp:
        dirs = args.run_dirs or synthetic_runs(Path(tmp))
        runs = load_runs(dirs)
        loaded_s = time.perf_counter() - started
        engine, info = make_replay_engine("random:qwen2.5-1.5b", threads=args.threads)
        result = run_policy_latency(runs, engine, info, per_arm=args.per_arm,
                                    concurrency=[int(b) for b in args.concurrency.split(",")],
                                    calibration=args.calibration, log=lambda m: print(m, flush=True))
    total_s = time.perf_counter() - started
    elapsed = result["elapsed_s"]
    arms = sorted({r.arm for r in runs})
    figures = {
        "source": "synthetic" if not args.run_dirs else [str(d) for d in args.run_dirs], "arms": arms,
        "trajectories": len(result["trajectories"]), "turns": sum(r["turns"] for r in result["trajectories"]),
        "per_arm": args.per_arm, "concurrency": result["concurrency"], "threads": args.threads,
        "model": info["model"], "parameters": info["parameters"], "cpus": os.cpu_count(),
        "machine": platform.machine(), "load_s": loaded_s, "calibration_s": elapsed["calibration"],
        "replay_s": elapsed["replay"], "wall_s": total_s, "target_s": 600.0, "within_target": total_s < 600.0,
        "mean_latency_ms": {a: {b: 1e3 * c["mean_s"] for b, c in result["summary"]["arms"][a]["levels"].items()}
                            for a in arms},
    }
    print(f"{figures['trajectories']} trajectories ({figures['turns']} turns) of {len(arms)} arms, concurrency "
          f"{result['concurrency']}, {args.threads} thread(s), {os.cpu_count()} CPUs")
    print(f"load {loaded_s:.1f} s, calibration {elapsed['calibration']:.1f} s, replay "
          + ", ".join(f"B={b} {s:.1f} s" for b, s in elapsed["replay"].items())
          + f"; wall {total_s:.1f} s ({'under' if total_s < 600 else 'OVER'} the 600 s target)")
    write_atomic(args.json_out, [json.dumps(figures, indent=2) + "\n"])
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()

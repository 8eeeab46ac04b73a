"""Sandbox start-up latency: run ``print(1)`` N times under each layer set and report median / p90.

    python benchmarks/bench_sandbox.py [--runs 30] [--out benchmarks/results/bench_sandbox.json]

Rows: a bare ``python -I -c 'print(1)'`` subprocess (the floor), then every layer set that works on
this machine (strongest first, as :func:`pte_rl.tools.sandbox.candidate_layers` lists them); the
first working one is what :func:`pte_rl.tools.run_python` uses by default. Each namespace set is
listed twice, with the private /tmp (tmpfs /tmp and /dev/shm, host mounts read-only) and without it,
so the difference between the two rows is that layer's cost. Latency is the wall time
of one whole call as the caller sees it (temp dir, process start, namespaces, output, clean-up).
The load average is recorded with the figures; on a busy machine the ratio to the bare subprocess
(``x bare``) is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pte_rl.tools.sandbox import SandboxLayers, _probe, candidate_layers, run_python


def summarize(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "runs": len(ordered),
        "median_ms": 1000 * statistics.median(ordered),
        "p90_ms": 1000 * p90,
        "min_ms": 1000 * ordered[0],
        "mean_ms": 1000 * statistics.fmean(ordered),
    }


def time_bare(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "print(1)"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def time_layers(layers: SandboxLayers, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = run_python("print(1)", timeout_s=30, layers=layers)
        times.append(time.perf_counter() - start)
        if result.error is not None or result.stdout != "1\n":
            raise RuntimeError(f"sandbox run failed under {layers}: {result}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per row (default 30)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_sandbox.json"))
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")

    rows = [{"name": "bare python -I subprocess", "layers": None, **summarize(time_bare(args.runs))}]
    for layers in candidate_layers():
        if not _probe(layers):
            rows.append({"name": layers.describe(), "layers": repr(layers), "works": False})
            continue
        time_layers(layers, 2)  # warm the file cache
        rows.append(
            {
                "name": layers.describe(),
                "layers": repr(layers),
                "works": True,
                **summarize(time_layers(layers, args.runs)),
            }
        )

    print(
        f"sandbox start-up latency, print(1), {args.runs} runs per row "
        f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs, uid {os.geteuid()})"
    )
    bare = rows[0]["median_ms"]
    print(f"{'median ms':>10} {'p90 ms':>8} {'x bare':>7}  layers")
    for row in rows:
        if row.get("works", True):
            row["median_over_bare"] = row["median_ms"] / bare
            print(
                f"{row['median_ms']:10.1f} {row['p90_ms']:8.1f} {row['median_over_bare']:7.2f}  {row['name']}"
            )
        else:
            print(f"{'-':>10} {'-':>8} {'-':>7}  {row['name']} (does not work here)")
    report = {
        "benchmark": "sandbox_startup",
        "code": "print(1)",
        "runs": args.runs,
        "rows": rows,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "euid": os.geteuid(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

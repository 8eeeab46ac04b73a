"""Every arm's measured latency change against every other arm, from a `pte-rl latency` result.

    .venv/bin/python benchmarks/latency_pairs.py runs/latency_arith/policy_latency.json [--out FILE.json]

`pte-rl latency` reports each arm against one baseline (``--baseline``, default correctness); this reads its
per-trajectory records back and summarises them against each arm in turn (the same statistics: the mean
over shared seeds of 100 * (m_a(s) / m_b(s) - 1) with a 95% Student-t interval, see docs/latency.md), so
that `pte` against `tokens` and `tool_calls` needs no second replay. Prints a Markdown table per
concurrency: rows are arms, columns the arm they are measured against.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="policy_latency.json (or its directory)")
    parser.add_argument("--out", help="also write the pairs as JSON")
    args = parser.parse_args()

    from pte_rl.pricing.jsonl import write_atomic
    from pte_rl.studies.anchors import ci
    from pte_rl.studies.policy_latency_report import summarise

    path = Path(args.result)
    path = path / "policy_latency.json" if path.is_dir() else path
    result = json.loads(path.read_text())
    records, levels = result["trajectories"], [int(b) for b in result["concurrency"]]
    arms = sorted({r["arm"] for r in records})
    pairs: dict = {}
    for baseline in arms:
        summary = summarise(records, levels, baseline)
        for arm in arms:
            if arm == baseline:
                continue
            for level, cell in summary["arms"][arm]["levels"].items():
                pairs.setdefault(level, {}).setdefault(arm, {})[baseline] = cell["change_pct"]
    for level, rows in pairs.items():
        print(f"\nConcurrency {level}: mean latency of the row's arm against the column's, over shared seeds\n")
        print("| arm | " + " | ".join(f"vs {b}" for b in arms) + " |")
        print("|---|" + "---:|" * len(arms))
        for arm in arms:
            print(f"| {arm} | " + " | ".join("–" if b == arm else ci(rows[arm][b], "%") for b in arms) + " |")
    if args.out:
        write_atomic(args.out, [json.dumps({"source": str(path), "pairs": pairs}, indent=1) + "\n"])
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

"""`pte-rl report RUN_DIRS... --out DIR`: compare training runs on held-out accuracy and PTE.

Writes DIR/report.md, DIR/report.csv, DIR/report.json and DIR/plots/*.png (see pte_rl/studies/report.py for
what each run directory must hold and how the table is computed), and prints the Markdown table.
"""

from __future__ import annotations

import argparse

from pte_rl.cli import CLIError
from pte_rl.studies.report import build_report, render_markdown


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="table and plots comparing runs (presets, weights, seeds) on held-out accuracy and PTE",
        description="Read run directories written by recipes/grpo_pte.py (config.yaml, metrics.jsonl, "
        "eval/summary.json or eval/trajectories.jsonl, optional eval_start/) and write a report: accuracy, "
        "PTE, generated tokens, tool calls and pattern rates per reward preset and weight, mean ± std over "
        "seeds, the PTE change against the baseline preset and against the start of training, solved work "
        "per token (correct answers per 1k generated tokens and per 1M PTE, accuracy within PTE budgets), "
        "the tool-call change, tool productivity and the PTE change on the tasks both arms solve, and plots.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories; a directory of run directories (e.g. an ablation's --out) "
                             "stands for all of them")
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write the report")
    parser.add_argument("--baseline", default="correctness", metavar="PRESET",
                        help="the preset the changes are measured against (default: correctness)")
    parser.add_argument("--pte-budget", type=float, metavar="B",
                        help="the largest PTE budget of the efficiency columns (accuracy at B/4, B/2 and B, and "
                             "the area under accuracy-vs-budget up to B), the same for every group; default: the "
                             "90th percentile of the baseline's held-out PTE, rounded up to 2 significant digits")
    parser.add_argument("--latency", metavar="FILE",
                        help="a `pte-rl latency` result (policy_latency.json, or its directory): adds the measured "
                             "latency per arm and concurrency, its change against the baseline and its correlation "
                             "with PTE, and plots/latency_vs_pte.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.pte_budget is not None and not 0 < args.pte_budget < float("inf"):
        raise CLIError(f"--pte-budget {args.pte_budget:g}: expected a positive PTE budget")
    summary = build_report(args.run_dirs, args.out, baseline=args.baseline, pte_budget=args.pte_budget,
                           latency=args.latency)
    print(render_markdown(summary, summary["plots"]), end="")
    print(f"written: {args.out}/report.md, report.csv, report.json, " + ", ".join(summary["plots"]))
    return 0

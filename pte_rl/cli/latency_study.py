"""`pte-rl latency-study`: correlate PTE and naive cost metrics with measured generation latency."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from pte_rl.cli.calibrate import DEFAULT_CONTEXTS, DEFAULT_DECODES, add_engine_arguments, int_list


def run(args: argparse.Namespace) -> int:
    from pte_rl.cli import CLIError
    from pte_rl.cli.calibrate import make_engine_from_args
    from pte_rl.studies.latency import ShapeRanges
    from pte_rl.studies.latency_report import run_study, write_report

    levels = int_list(args.concurrency, "--concurrency")
    if args.n < 3:
        raise CLIError(f"--n: expected at least 3 trajectories to correlate, got {args.n}")
    envs = [] if args.env in ("", "none") else [e.strip() for e in args.env.split(",") if e.strip()]
    if args.max_context < 16:
        raise CLIError(f"--max-context: expected at least 16 tokens, got {args.max_context}")
    ranges = replace(ShapeRanges(), max_context=args.max_context)
    engine = make_engine_from_args(args)
    try:
        result = run_study(
            engine, model=str(args.model), envs=envs, n=args.n, concurrency=levels, repeats=args.repeats,
            statistic=args.statistic, seed=args.seed, profile=args.profile, hardware=args.hardware,
            tokenizer=args.tokenizer, contexts=int_list(args.contexts, "--contexts"),
            decodes=int_list(args.decodes, "--decodes"), ranges=ranges,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    paths = write_report(result, Path(args.out), plots=not args.no_plots)
    if args.json:
        print(json.dumps(result["summary"], indent=2))
    else:
        print(Path(paths["table"]).read_text(encoding="utf-8"))
        print(f"wrote {', '.join(str(p) for p in paths.values() if not isinstance(p, list))} "
              f"and {len(paths.get('plots', []))} plots")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "latency-study",
        help="correlate PTE, token counts and price ratios with measured generation latency",
        description="Synthesise trajectories of varied shapes around the environments' prompts, replay them "
        "with per-turn timing (KV cache dropped between turns, tools excluded) at each concurrency level, and "
        "report Pearson and Spearman correlations of latency with PTE (datasheet and calibrated), generated "
        "tokens, total tokens, tool calls and API price ratios (the paper's Table 10 on this hardware).",
    )
    add_engine_arguments(parser)
    parser.add_argument("--env", default="arith,facts", help="environments whose prompts seed the shapes "
                        "(comma-separated; 'none': synthetic prompt lengths)")
    parser.add_argument("--n", type=int, default=120, help="trajectories (default 120)")
    parser.add_argument("--profile", help="calibration to use (name or path, from `pte-rl calibrate`); "
                        "default: calibrate first on --contexts x --decodes")
    parser.add_argument("--contexts", default=DEFAULT_CONTEXTS, help="calibration grid when no --profile")
    parser.add_argument("--decodes", default=DEFAULT_DECODES, help="calibration grid when no --profile")
    parser.add_argument("--max-context", type=int, default=1900,
                        help="largest context + decode of any turn (default 1900; keep under the model's limit)")
    parser.add_argument("--hardware", default="h100-pcie", help="datasheet profile for the datasheet gamma")
    parser.add_argument("--tokenizer", help="tokenizer directory for the prompts (default: --model)")
    parser.add_argument("--out", required=True, help="directory for latency_study.json, table.md and plots")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG scatter plots")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)

"""`pte-rl latency RUN_DIRS... --out DIR`: measured serving latency of trained policies' held-out trajectories.

Writes DIR/policy_latency.json, DIR/table.md and DIR/latency_vs_pte.png (see
pte_rl/studies/policy_latency.py for what is measured and how it is summarised) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pte_rl.cli.calibrate import DEFAULT_CONTEXTS, DEFAULT_DECODES, add_engine_arguments, int_list


def run(args: argparse.Namespace) -> int:
    from pte_rl.cli import CLIError
    from pte_rl.studies.policy_latency import RandomSize, load_runs, make_replay_engine, run_policy_latency
    from pte_rl.studies.policy_latency_report import describe, table_markdown, write_result

    levels = int_list(args.concurrency, "--concurrency")
    contexts, decodes = int_list(args.contexts, "--contexts"), int_list(args.decodes, "--decodes")
    for option, value in (("--per-arm", args.per_arm), ("--repeats", args.repeats),
                          ("--calibration-repeats", args.calibration_repeats), ("--threads", args.threads),
                          ("--prefill-tokens", args.prefill_tokens)):
        if value < 1:
            raise CLIError(f"{option}: expected a positive integer, got {value}")
    runs = load_runs(args.run_dirs)
    arms = sorted({r.arm for r in runs})
    if args.arms:
        wanted = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = [a for a in wanted if a not in arms]
        if unknown:
            raise CLIError(f"--arms: no such arm {', '.join(unknown)}; the runs hold {', '.join(arms)}")
        runs, arms = [r for r in runs if r.arm in wanted], wanted
    if args.baseline not in arms:
        raise CLIError(f"--baseline {args.baseline}: no such arm among the runs; arms: {', '.join(arms)}")
    size = RandomSize(layers=args.layers, hidden=args.hidden, vocab=args.vocab, seed=args.model_seed)
    try:
        engine, info = make_replay_engine(args.model, engine=args.engine, device=args.device, threads=args.threads,
                                          clock=args.clock, prefill_tokens=args.prefill_tokens, size=size)
    except ValueError as exc:  # an engine's own complaint (a device, a clock): bad input too
        raise CLIError(str(exc)) from None
    result = run_policy_latency(
        runs, engine, info, per_arm=args.per_arm, concurrency=levels, baseline=args.baseline, seed=args.seed,
        repeats=args.repeats, statistic=args.statistic, hardware=args.hardware, calibration=args.calibration,
        contexts=contexts, decodes=decodes, calibration_repeats=args.calibration_repeats,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    paths = write_result(result, Path(args.out), plot=not args.no_plot)
    if args.json:
        print(json.dumps(result["summary"], indent=2, default=str))
    else:
        print("\n".join([describe(result), "", *table_markdown(result)]))
        print(f"\nwrote {', '.join(str(p) for p in paths.values())} in {result['elapsed_s']['total']:.0f} s "
              f"(calibration {result['elapsed_s']['calibration']:.0f} s)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "latency",
        help="replay trained runs' held-out trajectories on an engine and measure their serving latency",
        description="Sample up to --per-arm held-out trajectories per arm (reward preset) from run directories, "
        "replay their exact turn shapes on an inference engine with the KV cache dropped each turn, at each "
        "concurrency, and report per-arm latency (mean, median, p90), its change against the baseline arm "
        "over seeds, and Pearson / Spearman correlations of latency with PTE (the run's own, datasheet, "
        "calibrated) and generated tokens.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories with eval/trajectories.jsonl; a directory of them stands for all")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="where to write policy_latency.json, table.md and latency_vs_pte.png")
    add_engine_arguments(parser)
    for action in parser._actions:  # here --model has a default: a random model of a named architecture
        if action.dest == "model":
            action.required, action.default = False, "random:qwen2.5-1.5b"
            action.help = ("random:ARCH (a random model: qwen2.5-1.5b, qwen2.5-7b, qwen3-1.7b, or a config.json "
                           "path; sized by --layers, --hidden, --vocab), a model directory, or a run directory "
                           "(its trained final/); default random:qwen2.5-1.5b")
    parser.set_defaults(concurrency="1,8", repeats=1)
    parser.add_argument("--per-arm", type=int, default=100, help="trajectories per arm, over its seeds (default 100)")
    parser.add_argument("--arms", help="only these arms (comma-separated presets); default: every arm")
    parser.add_argument("--baseline", default="correctness", help="the arm changes are measured against")
    parser.add_argument("--layers", type=int, default=4, help="random model: layers (default 4)")
    parser.add_argument("--hidden", type=int, default=192, help="random model: hidden size (default 192)")
    parser.add_argument("--vocab", type=int, default=4096, help="random model: vocabulary size (default 4096)")
    parser.add_argument("--model-seed", type=int, default=0, help="random model: initialisation seed")
    parser.add_argument("--hardware", default="h100-pcie", help="datasheet profile for the datasheet gamma")
    parser.add_argument("--calibration", metavar="FILE",
                        help="calibration record to use (name or path, from `pte-rl calibrate` with this model); "
                        "default: calibrate first on --contexts x --decodes")
    parser.add_argument("--contexts", default=DEFAULT_CONTEXTS, help="calibration grid when no --calibration")
    parser.add_argument("--decodes", default=DEFAULT_DECODES, help="calibration grid when no --calibration")
    parser.add_argument("--calibration-repeats", type=int, default=3, help="timings per grid shape (default 3)")
    parser.add_argument("--no-plot", action="store_true", help="skip latency_vs_pte.png")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)

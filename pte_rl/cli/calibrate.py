"""`pte-rl calibrate`: measure gamma and delta for a model on this machine and save a hardware profile."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_CONTEXTS = "64,384,1024,1792"
DEFAULT_DECODES = "4,24,96"


def int_list(text: str, option: str) -> list[int]:
    """``"1,8,32"`` -> [1, 8, 32]; every value a positive integer."""
    from pte_rl.cli import CLIError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{option}: expected comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise CLIError(f"{option}: expected comma-separated positive integers, got {text!r}")
    return values


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `calibrate` and `latency-study`."""
    parser.add_argument("--model", required=True, help="model directory (config.json + weights)")
    parser.add_argument("--engine", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--concurrency", default="1,8,32", help="sequences generated together, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timings per shape (default 3)")
    parser.add_argument("--statistic", choices=("median", "min"), default="median",
                        help="how repeats are reduced (default median)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (default 1)")
    parser.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                        help="auto: process CPU time on --device cpu, wall-clock on cuda")
    parser.add_argument("--prefill-tokens", type=int, default=1024,
                        help="token budget of one prefill forward: whole sequences per forward (default 1024)")
    parser.add_argument("--seed", type=int, default=0)


def make_engine_from_args(args: argparse.Namespace):
    from pte_rl.cli import CLIError
    from pte_rl.studies.replay import make_engine

    if args.repeats < 1:
        raise CLIError(f"--repeats: expected >= 1, got {args.repeats}")
    if not (Path(args.model) / "config.json").is_file():
        raise CLIError(f"--model {args.model}: not a model directory (no config.json)")
    try:
        return make_engine(args.engine, args.model, device=args.device, threads=args.threads, clock=args.clock,
                           prefill_tokens=args.prefill_tokens)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def default_name(model: str, device: str) -> str:
    return f"{Path(model).resolve().name}-{device}"


def format_fits(fits: dict, datasheet: dict | None) -> str:
    """The per-level table printed by `calibrate` and written to the study's report."""
    lines = ["concurrency  gamma_measured        delta               epsilon (per turn)   R2      rel.rmse"]
    for level, fit in sorted(fits.items()):
        eps = "-" if fit.epsilon is None else f"{fit.epsilon:9.4g} +- {fit.epsilon_se:.2g}"
        lines.append(f"{level:>11}  {fit.gamma:9.4g} +- {fit.gamma_se:<8.2g}  {fit.delta:8.4g} +- {fit.delta_se:<7.2g}"
                     f"  {eps:<19}  {fit.r2:.4f}  {fit.rel_rmse:.3f}")
    if datasheet:
        lines.append(f"datasheet gamma (paper formula, {datasheet['hardware']}): {datasheet['gamma']:.4g}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pte_rl.cli import CLIError
    from pte_rl.studies.calibrate import calibrate, calibration_record, datasheet_gamma, save_calibration

    contexts = int_list(args.contexts, "--contexts")
    decodes = int_list(args.decodes, "--decodes")
    levels = int_list(args.concurrency, "--concurrency")
    if len(set(contexts)) < 2 or len(set(decodes)) < 2:
        raise CLIError("--contexts and --decodes: give at least two values each (the fit has three unknowns)")
    engine = make_engine_from_args(args)
    try:
        datasheet = datasheet_gamma(args.model, args.hardware)
    except ValueError as exc:  # a config gamma.py cannot read: report, do not stop the measurement
        print(f"datasheet gamma unavailable: {exc}", file=sys.stderr)
        datasheet = None
    try:
        result = calibrate(engine, model=str(args.model), contexts=contexts, decodes=decodes, concurrency=levels,
                           repeats=args.repeats, statistic=args.statistic, seed=args.seed, per_turn=args.per_turn,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    record = calibration_record(result, args.name or default_name(args.model, args.device), datasheet=datasheet)
    profile_path, record_path = save_calibration(record, out=args.out)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(format_fits(result.fits, datasheet))
        use = record["name"] if not args.out else profile_path
        print(f"profile: {profile_path}  (use: pte-rl score --hardware {use})")
        print(f"full record: {record_path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="measure gamma and delta for a model on this machine",
        description="Time prefill and decode over a grid of context and decode lengths (KV cache dropped "
        "between turns), fit time = a*prefill + b*context*decode + c*decode [+ e] per concurrency level, "
        "report gamma = b/a and delta = c/a, and save a hardware profile usable by name.",
    )
    add_engine_arguments(parser)
    parser.add_argument("--contexts", default=DEFAULT_CONTEXTS, help=f"context lengths (default {DEFAULT_CONTEXTS})")
    parser.add_argument("--decodes", default=DEFAULT_DECODES, help=f"decode lengths (default {DEFAULT_DECODES})")
    parser.add_argument("--per-turn", choices=("auto", "always", "never"), default="auto",
                        help="fit a per-turn constant: auto keeps it when significant")
    parser.add_argument("--hardware", default="h100-pcie", help="datasheet profile for the comparison gamma")
    parser.add_argument("--name", help="profile name (default: <model dir name>-<device>)")
    parser.add_argument("--out", help="write the profile to this JSON file instead of the profile directory")
    parser.add_argument("--json", action="store_true", help="print the full record as JSON")
    parser.set_defaults(func=run)

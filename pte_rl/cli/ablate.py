"""`pte-rl ablate`: train every (reward preset, penalty weight, seed) one after another, then report.

    pte-rl ablate --presets pte,correctness,tokens,tool_calls --seeds 0,1,2 --out runs/ablate
    pte-rl ablate --presets pte --weights 0.5,0.9 --seeds 0,1,2 --out runs/ablate -- --max_steps 60
    pte-rl ablate ... -- --env.options.n_train 500 --eval.n 50    # the recipe's own overrides
    pte-rl ablate ... --dry-run          # print the command lines only

Arguments after ``--`` go to every recipe run unchanged, in the recipe's syntax (``--key value``,
dotted for its sections: pte_rl.training.config); an old or unknown dotted key among them ends the
ablation before any run starts (exit status 2). The grid itself (``--presets``, ``--weights``,
``--seeds``) sets ``--reward.preset``, ``--reward.overrides.<penalty>.weight`` and ``--seed``.
See pte_rl/studies/ablate.py for run names, skipping, resuming and locking.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from pte_rl.cli import CLIError
from pte_rl.studies.ablate import plan_runs, run_ablation

DEFAULT_PRESETS = "pte,correctness,tokens,tool_calls"
RECIPE = Path("recipes") / "grpo_pte.py"


def _names(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise CLIError(f"{option}: expected a comma-separated list, got {text!r}")
    return items


def _numbers(text: str, option: str, kind: type) -> list:
    out: list[float | None] = []
    for item in _names(text, option):
        if kind is float and item == "default":
            out.append(None)
            continue
        try:
            out.append(kind(item))
        except ValueError:
            raise CLIError(f"{option}: expected {kind.__name__} values separated by commas, "
                           f"got {item!r}") from None
    return out


def default_recipe() -> str:
    """recipes/grpo_pte.py in the current directory, else in the repository pte_rl was installed from."""
    if RECIPE.is_file():
        return str(RECIPE)
    return str(Path(__file__).resolve().parent.parent.parent / RECIPE)


def check_recipe_arguments(extra: list[str]) -> None:
    """An old or unknown dotted recipe key after ``--`` raises before any run starts (flat keys are
    left to the recipe, which checks them against TRL's GRPOConfig)."""
    from pte_rl.training.config import check_key

    for token in extra:
        key = token[2:].partition("=")[0] if token.startswith("--") else ""
        if key and key != "config":
            check_key(key, "command line (after --)")
        if key in ("reward.preset", "seed", "output_dir", "run_name"):
            raise CLIError(f"command line (after --): --{key} is set by the grid of pte-rl ablate itself")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablate",
        help="train reward presets x penalty weights x seeds one after another, then write a report",
        description="Run recipes/grpo_pte.py once per (preset, weight, seed) into "
        "OUT/<preset>[-w<weight>]-s<seed>, "
        "skipping complete runs (eval/summary.json) and resuming interrupted ones (checkpoint-*), then write "
        "`pte-rl report` of all complete runs into OUT/report. Arguments after `--` go to every run.",
    )
    parser.add_argument("--presets", default=DEFAULT_PRESETS, metavar="P,P,...",
                        help=f"reward presets (names in rewards/ or YAML paths; default {DEFAULT_PRESETS})")
    parser.add_argument("--weights", metavar="W,W,...",
                        help="penalty weights to sweep for presets that have a penalty ('default' = the "
                             "preset's own); presets without one (correctness) run once")
    parser.add_argument("--seeds", default="0,1,2", metavar="S,S,...", help="seeds (default 0,1,2)")
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="recipe config passed as --config (default: the recipe's own default)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the run directories and report go")
    parser.add_argument("--recipe", default=None, metavar="PATH", help=f"training script (default {RECIPE})")
    parser.add_argument("--launcher", metavar="CMD",
                        help="command that runs the recipe instead of this Python, e.g. "
                             "'accelerate launch --config_file launch/accelerate_cpu.yaml'")
    parser.add_argument("--weight-key", action="append", default=[], metavar="PRESET=KEY",
                        help="override key of a preset's penalty weight (default: read from the preset, "
                             "e.g. pte=pte.weight); repeatable")
    parser.add_argument("--baseline", default="correctness", metavar="PRESET",
                        help="preset the report measures changes against (default correctness)")
    parser.add_argument("--dry-run", action="store_true", help="print the command lines, run nothing")
    parser.add_argument("--stop-on-error", action="store_true", help="stop at the first failed run")
    parser.add_argument("--no-report", action="store_true", help="do not write OUT/report at the end")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extra = list(args.extra)
    if extra and extra[0] == "--":
        extra = extra[1:]
    elif extra:
        raise CLIError(f"unexpected arguments {extra}; put recipe arguments after `--`")
    check_recipe_arguments(extra)
    weight_keys = {}
    for item in args.weight_key:
        preset, sep, key = item.partition("=")
        if not sep or not preset or not key:
            raise CLIError(f"--weight-key: expected PRESET=KEY (e.g. pte=pte.weight), got {item!r}")
        weight_keys[preset] = key
    specs = plan_runs(
        _names(args.presets, "--presets"), _numbers(args.seeds, "--seeds", int),
        _numbers(args.weights, "--weights", float) if args.weights else [], weight_keys,
    )
    return run_ablation(
        specs, out=args.out, recipe=args.recipe or default_recipe(), config=args.config, extra=extra,
        launcher=shlex.split(args.launcher) if args.launcher else None, dry_run=args.dry_run,
        stop_on_error=args.stop_on_error, report=not args.no_report, baseline=args.baseline,
    )

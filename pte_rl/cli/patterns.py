"""`pte-rl patterns TRAJECTORIES.jsonl`: inefficiency patterns per trajectory, with evidence, and per batch.

Prints each trajectory's flags (pattern, turn, evidence) and the batch's rate and cost multiplier of
every pattern (see pte_rl.patterns). Cost multipliers need gamma: ``--gamma G``, or
``--model-config CONFIG`` with the hardware options of `pte-rl score`; without one, only the rates
are printed. ``--json`` prints one object: ``{"trajectories": [{"id", "task_id", "flags": [...]}],
"metrics": {...}, ...}`` with ``null`` for a multiplier that has no comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any

from pte_rl.cli import CLIError
from pte_rl.cli.gamma import add_hardware_arguments, cost_model_from_args
from pte_rl.cli.score import add_log_arguments, read_log_args
from pte_rl.patterns import DEFAULT_TOOLSETS, PATTERNS, PatternConfig, detect, pattern_rates
from pte_rl.pricing.cost import ATTENTION_MODES, CACHE_POLICIES, CostModel


def _toolsets(specs: list[str] | None) -> dict[str, str]:
    """``SET=tool,tool`` specs -> {tool: SET}; they replace the default grouping."""
    if not specs:
        return dict(DEFAULT_TOOLSETS)
    mapping: dict[str, str] = {}
    for spec in specs:
        name, _, tools = spec.partition("=")
        members = [t.strip() for t in tools.split(",") if t.strip()]
        if not name.strip() or not members:
            raise CLIError(f"--toolsets {spec!r}: expected SET=tool[,tool...], e.g. web=search,visit")
        for tool in members:
            if tool in mapping:
                raise CLIError(
                    f"--toolsets: tool {tool!r} is in two sets ({mapping[tool]!r}, {name.strip()!r})"
                )
            mapping[tool] = name.strip()
    return mapping


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "patterns",
        help="inefficiency patterns (confirmatory tool use, tool mixing, ...) per trajectory and per batch",
        description="Flag inefficiency patterns in a JSONL log of trajectories, with the evidence of each "
        "flag, and give each pattern's rate and cost multiplier (mean PTE of the flagged trajectories / mean "
        "PTE of the pattern-free ones).",
    )
    parser.add_argument(
        "trajectories", metavar="TRAJECTORIES.jsonl", help="a log: interchange format, ShareGPT or Hermes"
    )
    parser.add_argument("--json", action="store_true", help="print flags and metrics as one JSON object")
    parser.add_argument(
        "--gamma", type=float, metavar="G", help="gamma for the cost multipliers, given directly"
    )
    parser.add_argument(
        "--model-config", metavar="CONFIG", help="config.json or model dir to derive gamma from"
    )
    add_hardware_arguments(parser, mode_flag="--gamma-mode")
    parser.add_argument(
        "--cache", choices=CACHE_POLICIES, default="evict", help="PTE cache policy (default evict)"
    )
    parser.add_argument(
        "--attention", choices=ATTENTION_MODES, default="paper", help="PTE decode attention mode"
    )
    parser.add_argument("--delta", type=float, metavar="D", help="per-decoded-token constant (default 0)")
    add_log_arguments(parser)
    parser.add_argument(
        "--toolsets",
        nargs="+",
        metavar="SET=TOOLS",
        help="tool groups for tool mixing, e.g. web=search,visit compute=python,calculator "
        "(default: search/visit/web_search/browse/fetch -> web, python/calculator/code_interpreter -> "
        "compute; an unlisted tool goes by its family: search and reading tools (google_search, open_url, "
        "...) -> web, code tools (python_tool, run_code, ...) -> compute; see --no-tool-families)",
    )
    parser.add_argument(
        "--compute-tools",
        nargs="+",
        metavar="TOOL",
        default=None,
        help="tools whose first call can be confirmatory (default: the code family: python, python_tool, "
        "code_interpreter, execute_python, run_code, ipython, calculator, ...)",
    )
    parser.add_argument(
        "--no-tool-families",
        action="store_true",
        help="know tools only by the --toolsets / --compute-tools lists, not by the family their names show",
    )
    parser.add_argument(
        "--overlong-tokens",
        type=int,
        default=2048,
        metavar="N",
        help="a tool response over N tokens is overlong (default 2048)",
    )
    parser.add_argument(
        "--front-loading-share",
        type=float,
        default=0.8,
        metavar="S",
        help="flag front-loading above this share of decode tokens (default 0.8)",
    )
    parser.add_argument(
        "--patterns",
        nargs="+",
        choices=PATTERNS,
        metavar="NAME",
        help=f"detect only these (default all: {' '.join(PATTERNS)})",
    )
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace) -> PatternConfig:
    try:
        return PatternConfig(
            compute_tools=tuple(args.compute_tools) if args.compute_tools else PatternConfig().compute_tools,
            toolsets=_toolsets(args.toolsets),
            tool_families=not args.no_tool_families,
            overlong_tokens=args.overlong_tokens,
            front_loading_share=args.front_loading_share,
            enabled=tuple(args.patterns or PATTERNS),
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _cost_model(args: argparse.Namespace) -> CostModel | None:
    if args.gamma is None and not (args.model_config or args.hardware):
        return None
    return cost_model_from_args(args)[0]


def _null_nan(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    model = _cost_model(args)
    trajectories = read_log_args(args)
    if not trajectories:
        raise CLIError(f"{args.trajectories}: no trajectories in the file")
    flags = [detect(t, config) for t in trajectories]
    metrics = pattern_rates(trajectories, model, config=config, flags=flags)
    ids = [t.id if t.id is not None else str(i) for i, t in enumerate(trajectories)]
    if args.json:
        out: dict[str, Any] = {
            "source": os.fspath(args.trajectories),
            "gamma": model.gamma if model else None,
            "trajectories": [
                {"id": ids[i], "task_id": t.task_id, "flags": [f.to_dict() for f in flags[i]]}
                for i, t in enumerate(trajectories)
            ],
            "metrics": _null_nan(metrics),
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    for i, found in enumerate(flags):
        print(f"{ids[i]}: " + ("no pattern" if not found else f"{len(found)} flag(s)"))
        for flag in found:
            where = "-" if flag.turn is None else f"turn {flag.turn}"
            kind = f" [{flag.kind}]" if flag.kind else ""
            print(f"  {flag.pattern:<20} {where:<8}{kind} {flag.evidence}")
    print()
    header = f"{len(trajectories)} trajectories" + (
        f", gamma {model.gamma:.6g}" if model else " (no gamma: give --gamma G for cost multipliers)"
    )
    print(header)
    print(f"{'pattern':<22}{'rate':>8}{'cost x':>10}")
    for name in config.enabled:
        rate = metrics[f"patterns/{name}_rate"]
        multiplier = metrics.get(f"patterns/{name}_cost_multiplier")
        shown = "-" if multiplier is None or math.isnan(multiplier) else f"{multiplier:.2f}"
        print(f"{name:<22}{100 * rate:>7.1f}%{shown:>10}")
    print(f"{'any pattern':<22}{100 * metrics['patterns/any_rate']:>7.1f}%")
    share = metrics["patterns/front_loading_share_mean"]
    if not math.isnan(share):
        print(f"mean share of decode tokens up to the first call: {100 * share:.1f}%")
    return 0

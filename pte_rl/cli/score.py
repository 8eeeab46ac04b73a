"""`pte-rl score TRAJECTORIES.jsonl`: price every trajectory of a log with PTE and summarise.

Per trajectory (``--out``, JSONL, written atomically): ``id``, ``task_id``, ``pte``, ``prefill``,
``decode``, ``generated_tokens`` (sum of decode_i), ``total_tokens`` (sum of context_i + decode_i,
every turn's input counted uncached), ``tool_calls``, ``turns``, ``correct``. The summary gives the
means over all trajectories and over the correct and the incorrect ones, as in the paper's Fig. 7, and
the solved work per token (``efficiency/*`` in its ``metrics``: :func:`pte_rl.pricing.efficiency.solved_work`,
accuracy at the ``--pte-budgets``).

The whole file is read and priced before anything is written: bad input leaves no partial output.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pte_rl.cli import CLIError
from pte_rl.cli.gamma import add_hardware_arguments, cost_model_from_args
from pte_rl.pricing.cost import ATTENTION_MODES, CACHE_POLICIES, CostModel, TurnTable, pte_batch
from pte_rl.pricing.efficiency import DEFAULT_PTE_BUDGETS, budget_key, solved_work
from pte_rl.pricing.formats import FORMATS, iter_log
from pte_rl.pricing.jsonl import write_jsonl
from pte_rl.pricing.trajectory import Trajectory

ROW_FIELDS = ("id", "task_id", "pte", "prefill", "decode", "generated_tokens", "total_tokens", "tool_calls",
              "turns", "correct")
MEAN_FIELDS = ("pte", "prefill", "decode", "generated_tokens", "total_tokens", "tool_calls", "turns")


def score_rows(trajectories: Sequence[Trajectory], model: CostModel) -> list[dict[str, Any]]:
    """One row per trajectory (see the module docstring), priced with :func:`pte_rl.pricing.cost.pte_batch`."""
    table = TurnTable.from_trajectories(trajectories)
    priced = pte_batch(table, model)
    n = table.num_trajectories
    generated = np.bincount(table.trajectory, weights=table.decode, minlength=n)
    total = np.bincount(table.trajectory, weights=table.context + table.decode, minlength=n)
    turns = np.bincount(table.trajectory, minlength=n)
    return [
        {
            "id": traj.id if traj.id is not None else str(i),
            "task_id": traj.task_id,
            "pte": float(priced.total[i]),
            "prefill": float(priced.prefill[i]),
            "decode": float(priced.decode[i]),
            "generated_tokens": int(generated[i]),
            "total_tokens": int(total[i]),
            "tool_calls": traj.num_tool_calls,
            "turns": int(turns[i]),
            "correct": traj.correct,
        }
        for i, traj in enumerate(trajectories)
    ]


def _means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(rows)}
    for key in MEAN_FIELDS:
        out[key] = float(np.mean([r[key] for r in rows])) if rows else None
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over all rows and over correct / incorrect / ungraded ones, and namespaced metrics.

    ``metrics`` holds ``pte/mean``, ``pte/prefill_mean``, ``pte/decode_mean``, ``pte/correct_mean``,
    ``pte/incorrect_mean``, ``tokens/generated_mean``, ``tokens/total_mean``,
    ``tools/calls_per_trajectory``, ``turns/mean`` and ``correct/rate`` (over graded rows).
    """
    groups = {
        "all": _means(rows),
        "correct": _means([r for r in rows if r["correct"] is True]),
        "incorrect": _means([r for r in rows if r["correct"] is False]),
        "ungraded": _means([r for r in rows if r["correct"] is None]),
    }
    graded = groups["correct"]["count"] + groups["incorrect"]["count"]
    overall = groups["all"]
    metrics = {
        "pte/mean": overall["pte"],
        "pte/prefill_mean": overall["prefill"],
        "pte/decode_mean": overall["decode"],
        "pte/correct_mean": groups["correct"]["pte"],
        "pte/incorrect_mean": groups["incorrect"]["pte"],
        "tokens/generated_mean": overall["generated_tokens"],
        "tokens/total_mean": overall["total_tokens"],
        "tools/calls_per_trajectory": overall["tool_calls"],
        "turns/mean": overall["turns"],
        "correct/rate": groups["correct"]["count"] / graded if graded else None,
    }
    return {"trajectories": len(rows), "graded": graded, "groups": groups, "metrics": metrics}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="price trajectories (JSONL) with PTE; per-trajectory rows and a correct-vs-incorrect summary",
        description="Price every trajectory of a JSONL log with PTE. gamma comes from --gamma, or from "
        "--model-config and a hardware profile, or from a calibrated profile (--hardware FILE.json).",
    )
    parser.add_argument("trajectories", metavar="TRAJECTORIES.jsonl",
                        help="a log: the interchange format, ShareGPT or Hermes (see --format)")
    parser.add_argument("--gamma", type=float, metavar="G", help="gamma, given directly")
    parser.add_argument("--model-config", metavar="CONFIG", help="config.json or model dir to derive gamma from")
    add_hardware_arguments(parser, mode_flag="--gamma-mode")
    add_log_arguments(parser)
    parser.add_argument("--cache", choices=CACHE_POLICIES, default="evict",
                        help="evict (the paper's): prefill the whole context every turn; reuse: only new "
                             "tokens; measured: skip the recorded cached tokens")
    parser.add_argument("--attention", choices=ATTENTION_MODES, default="paper",
                        help="paper: gamma*C*D; exact: gamma*(C*D + D*(D-1)/2)")
    parser.add_argument("--delta", type=float, metavar="D",
                        help="per-decoded-token constant in prefill tokens (default 0, or a calibrated profile's)")
    parser.add_argument("--pte-budgets", metavar="B1,B2,...",
                        help="PTE budgets for efficiency/accuracy_at_pte_<B>; the largest is the upper end of "
                             "the accuracy-vs-budget area (default: 1000,10000,100000)")
    parser.add_argument("--out", metavar="FILE", help="write the per-trajectory rows here (JSONL)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def pte_budgets(text: str | None) -> list[float]:
    """``--pte-budgets``: comma-separated positive numbers (``1000,5e3``), sorted; None: the defaults."""
    if text is None:
        return sorted(DEFAULT_PTE_BUDGETS)
    try:
        budgets = [float(part) for part in text.split(",")]
    except ValueError:
        budgets = []
    if not budgets or not all(0 < b < float("inf") for b in budgets):
        raise CLIError(f"--pte-budgets {text}: expected comma-separated positive PTE budgets (e.g. 1000,10000)")
    return sorted(set(budgets))


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format`` and ``--tokenizer``: how a log is read (shared by score and patterns)."""
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="log shape: openai (the interchange format), sharegpt ({conversations: [{from, "
                             "value}]}), hermes (<tool_call> blocks in assistant text); auto (default) detects "
                             "it per record")
    parser.add_argument("--tokenizer", metavar="DIR",
                        help="local tokenizer directory (with a chat template) to count turns without `usage`")


def read_log_args(args: argparse.Namespace) -> list[Trajectory]:
    """The trajectories of ``args.trajectories`` in ``args.format``, counted with ``--tokenizer`` if given."""
    tokenizer = _load_tokenizer(args.tokenizer) if args.tokenizer else None
    return list(iter_log(args.trajectories, tokenizer, args.format))


def _load_tokenizer(directory: str) -> Any:
    if not Path(directory).is_dir():
        raise CLIError(f"--tokenizer {directory}: not a directory (a local tokenizer directory is expected)")
    from transformers import AutoTokenizer  # heavy: only when a tokenizer is needed

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CLIError(f"--tokenizer {directory}: cannot load a tokenizer: {exc}") from None
    if getattr(tokenizer, "chat_template", None) is None:
        raise CLIError(f"--tokenizer {directory}: the tokenizer has no chat template; one is needed to count turns")
    return tokenizer


def _print_summary(summary: dict[str, Any], header: str) -> None:
    print(header)
    columns = ("count", *MEAN_FIELDS)
    titles = ("n", "PTE", "prefill", "decode", "generated", "total tok", "tool calls", "turns")
    print(f"{'mean':<10}" + "".join(f"{t:>12}" for t in titles))
    for name, group in summary["groups"].items():
        if name == "ungraded" and not group["count"]:
            continue
        cells = [f"{group['count']:>12}"] + [
            f"{'-':>12}" if group[c] is None else f"{group[c]:>12,.1f}" for c in columns[1:]
        ]
        print(f"{name:<10}" + "".join(cells))
    metrics = summary["metrics"]
    if metrics["correct/rate"] is not None:
        line = f"accuracy {100 * metrics['correct/rate']:.1f}% of {summary['graded']} graded"
        correct, incorrect = metrics["pte/correct_mean"], metrics["pte/incorrect_mean"]
        if correct and incorrect is not None:
            line += f"; mean PTE incorrect / correct = {incorrect / correct:.2f}x"
        print(line)
    _print_efficiency(metrics, summary["pte_budgets"])


def _print_efficiency(metrics: dict[str, Any], budgets: Sequence[float]) -> None:
    """The efficiency/* lines of the text summary (keys left out when undefined)."""
    def value(key: str, spec: str) -> str:
        number = metrics.get(f"efficiency/{key}")
        return "-" if number is None else format(number, spec)

    if "efficiency/completion_rate" not in metrics:
        return
    print(f"solved work: {value('correct_per_1k_generated', '.3f')} correct / 1k generated tokens, "
          f"{value('correct_per_1m_pte', ',.1f')} / 1M PTE, {value('pte_per_solved', ',.1f')} PTE per solved, "
          f"{value('tool_productivity', '.3f')} correct / tool call")
    print(f"completion {value('completion_rate', '.3f')}, accuracy given completion "
          f"{value('accuracy_given_completion', '.3f')}; accuracy at PTE "
          + ", ".join(f"{b:,.0f}: {metrics[budget_key(b)]:.3f}" for b in budgets)
          + f"; area to {max(budgets):,.0f}: {value('accuracy_pte_auc', '.3f')}")


def run(args: argparse.Namespace) -> int:
    model, source = cost_model_from_args(args)
    gamma, delta = model.gamma, model.delta
    budgets = pte_budgets(args.pte_budgets)
    trajectories = read_log_args(args)
    rows = score_rows(trajectories, model)
    if args.out:
        write_jsonl(args.out, rows)
    summary = summarize(rows)
    summary["metrics"].update(solved_work(trajectories, model, budgets=budgets))
    summary.update(
        pte_budgets=budgets, source=os.fspath(args.trajectories), out=args.out, gamma=gamma,
        cache=args.cache, attention=args.attention, delta=delta, gamma_source=source,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    how = source["mode"] if source["mode"] == "given" else f"{source['mode']} mode on {source['hardware']}"
    if source.get("active_params_estimated"):
        how += ", active params estimated"
    _print_summary(summary, f"{len(rows)} trajectories from {args.trajectories}: gamma {gamma:.6g} ({how}), "
                            f"cache {args.cache}, attention {args.attention}, delta {delta:g}")
    if args.out:
        print(f"wrote {len(rows)} rows to {args.out}")
    return 0

"""`pte-rl harness`: a policy under its training harness and under variants of it; logs compared offline.

    pte-rl harness tiny --env arith --variants renamed,pythonic,heldout_combo --n 50 --samples 2 --out runs/h
    pte-rl harness MODEL_DIR --env facts --variants all --backend vllm --out runs/h_facts
    pte-rl harness --compare runs/h/training/trajectories.jsonl runs/h/pythonic/trajectories.jsonl --gamma 1e-3
    pte-rl harness --list

The probe rolls the policy out on the first ``--n`` held-out rows of the environment (``--samples`` each)
under the ``training`` harness (always first: the reference) and each variant (built-in names or YAML /
JSON files of variants; docs/harness.md), through the training loop (:func:`pte_rl.rollout.loop.run_rollouts`
on the re-skinned environment), and writes into ``--out``: ``<variant>/trajectories.jsonl`` (the
interchange format), ``harness.json`` (every measure and overhead, :mod:`pte_rl.rollout.harness.probe`),
``harness.md`` (the table) and ``harness.png`` (accuracy and PTE per harness). ``MODEL`` is a local model
directory, or ``tiny``: the embedded policy of ``--env`` (shipped for arith and facts; for another
environment, build it first with ``pte-rl tiny build --env NAME``). PTE is priced with ``--gamma G``, or gamma derived
from the model's config.json (or ``--model-config``) on ``--hardware``, as in ``pte-rl score``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pte_rl.cli import CLIError
from pte_rl.cli.gamma import add_hardware_arguments, cost_model_from_args
from pte_rl.pricing.cost import ATTENTION_MODES, CACHE_POLICIES


def register(subparsers: argparse._SubParsersAction) -> None:
    from pte_rl.cli.rollout import _accept_env_options

    parser = subparsers.add_parser(
        "harness", help="evaluate a policy under harness variants (tool names, arguments, call syntax, answer "
                        "format); compare logs of two harnesses",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="local model directory, or `tiny`")
    parser.add_argument("--env", "--env.name", dest="env", help="environment name or .py path; its options: "
                        "--env.options.NAME VALUE")
    parser.add_argument("--variants", default="all",
                        help="comma-separated built-in variant names or .yaml/.json files; `all`: every built-in")
    parser.add_argument("--out", help="output directory (required for a probe; optional with --compare)")
    parser.add_argument("--split", choices=("train", "eval"), default="eval")
    parser.add_argument("--n", type=int, default=50, help="rows of the split (default 50)")
    parser.add_argument("--samples", type=int, default=1, help="episodes per row")
    parser.add_argument("--backend", "--engine", dest="backend", choices=("transformers", "vllm"),
                        default="transformers")
    parser.add_argument("--device", default="auto", help="transformers backend: cpu, cuda, cuda:1, or auto")
    parser.add_argument("--dtype", default="auto", help="model dtype: auto, float32, bfloat16, float16")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes generated together")
    parser.add_argument("--max-turns", type=int, default=None, help="assistant turns (default: the env's)")
    parser.add_argument("--max-completion-length", type=int, default=1024, help="token budget over all turns")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tool-timeout", type=float, default=30.0, help="seconds per tool call")
    parser.add_argument("--compare", nargs="+", metavar="LOG.jsonl",
                        help="compare logs offline instead of running a model (the first is the reference)")
    parser.add_argument("--list", action="store_true", help="list the built-in variants and exit")
    parser.add_argument("--gamma", type=float, metavar="G", help="gamma, given directly")
    parser.add_argument("--model-config", metavar="CONFIG", help="config.json to derive gamma from (default: MODEL's)")
    add_hardware_arguments(parser, mode_flag="--gamma-mode")
    parser.add_argument("--cache", choices=CACHE_POLICIES, default="evict")
    parser.add_argument("--attention", choices=ATTENTION_MODES, default="paper")
    parser.add_argument("--delta", type=float, metavar="D")
    parser.set_defaults(func=run, env_options={}, env_option_error=None)
    _accept_env_options(parser)


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if args.compare:
        if args.model or args.env:
            raise CLIError("--compare reads logs: give no MODEL and no --env with it")
        return _compare(args)
    return _probe(args)


def _list() -> int:
    from pte_rl.rollout.harness import BUILTIN_VARIANTS

    for harness in BUILTIN_VARIANTS.values():
        fields = {k: v for k, v in harness.describe().items() if k != "name"}
        print(f"{harness.name:<15} {json.dumps(fields) if fields else '(the identity: the environment as trained)'}")
    return 0


def _check_numbers(args: argparse.Namespace) -> None:
    for name in ("n", "samples", "batch_size", "max_turns", "max_completion_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
    if args.env_option_error:
        raise CLIError(f"command line: {args.env_option_error}")


def _variants(text: str) -> list[Any]:
    """The training harness first, then the named variants (``all``: every built-in)."""
    from pte_rl.rollout.harness import BUILTIN_VARIANTS, resolve_variants

    variants = list(BUILTIN_VARIANTS.values()) if text.strip() == "all" else resolve_variants(text)
    if all(h.name != "training" for h in variants):
        variants.insert(0, BUILTIN_VARIANTS["training"])
    return sorted(variants, key=lambda h: h.name != "training")


def _probe(args: argparse.Namespace) -> int:
    if not args.model or not args.env or not args.out:
        raise CLIError("a probe needs MODEL, --env NAME and --out DIR (or --compare LOGS, or --list)")
    _check_numbers(args)
    from pte_rl.rollout.env import load_environment
    from pte_rl.rollout.harness import reskin
    from pte_rl.training.config import bind_env_options

    options = bind_env_options(args.env, args.env_options, lambda key: f"command line (--{key})")
    try:
        env = load_environment(args.env, **options)
        env.split(args.split)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    skins = [reskin(env, harness) for harness in _variants(args.variants)]  # bad variants fail before loading
    args.model = _model_path(args.model, args.env)
    if args.gamma is None and args.model_config is None:
        args.model_config = args.model
    cost_model, _ = cost_model_from_args(args)
    groups = _run_variants(args, skins)
    settings = {"model": args.model, "env": args.env, "env_options": options, "split": args.split, "n": args.n,
                "samples": args.samples, "seed": args.seed, "temperature": args.temperature, "backend": args.backend}
    return _report(args, groups, cost_model, "training", settings)


def _model_path(model: str, env: str) -> str:
    """A local model directory; ``tiny``: the embedded policy's, copied from the shipped one if needed."""
    if model != "tiny":
        if not Path(model, "config.json").is_file():
            raise CLIError(f"MODEL {model}: expected a local model directory with a config.json, or `tiny`")
        return model
    from pte_rl.tiny.config import is_built, settings_hash, tiny_config, tiny_policy_path
    from pte_rl.tiny.shipped import install_shipped

    config = tiny_config(env)
    path = tiny_policy_path(config)
    if is_built(path) or install_shipped(settings_hash(config), path, lambda m: print(m, file=sys.stderr),
                                         env=config.env):
        return str(path)
    raise CLIError(f"MODEL tiny: no tiny policy is built for --env {env}; build it first with "
                   f"`pte-rl tiny build --env {env}` (minutes)")


def _run_variants(args: argparse.Namespace, skins: list[Any]) -> dict[str, list]:
    from transformers import AutoTokenizer, set_seed

    from pte_rl.cli.rollout import _transformers_backend, _vllm_backend
    from pte_rl.pricing.jsonl import write_trajectories
    from pte_rl.rollout.backends import SamplingConfig
    from pte_rl.rollout.harness.probe import rollout_split
    from pte_rl.rollout.loop import RolloutConfig

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.chat_template is None:
        raise CLIError(f"MODEL {args.model}: the tokenizer has no chat template")
    backend = _vllm_backend(args, tokenizer) if args.backend == "vllm" else _transformers_backend(args, tokenizer)
    groups = {}
    for env in skins:
        set_seed(args.seed)  # every harness samples from the same seed
        config = RolloutConfig(max_turns=args.max_turns or env.max_turns,
                               max_completion_length=args.max_completion_length, tool_timeout_s=args.tool_timeout,
                               sampling=SamplingConfig(temperature=args.temperature))
        metadata = {"env": env.name, "model": args.model, "engine": args.backend, "split": args.split,
                    "temperature": args.temperature, "seed": args.seed}
        trajectories = rollout_split(env, backend, tokenizer, config, split=args.split, n=args.n,
                                     samples=args.samples, batch_size=args.batch_size, metadata=metadata)
        write_trajectories(Path(args.out) / env.harness.name / "trajectories.jsonl", trajectories)
        groups[env.harness.name] = trajectories
        print(f"{env.harness.name}: {len(trajectories)} trajectories", file=sys.stderr, flush=True)
    return groups


def _compare(args: argparse.Namespace) -> int:
    from pte_rl.pricing.jsonl import FormatError, read_trajectories
    from pte_rl.rollout.harness.probe import harness_name

    if len(args.compare) < 2:
        raise CLIError("--compare: expected at least two logs (the first is the reference)")
    cost_model, _ = cost_model_from_args(args)
    groups: dict[str, list] = {}
    for path in args.compare:
        try:
            trajectories = list(read_trajectories(path))
        except FileNotFoundError:
            raise CLIError(f"--compare {path}: no such file") from None
        except FormatError as exc:
            raise CLIError(str(exc)) from None
        label = harness_name(trajectories[0], Path(path).stem) if trajectories else Path(path).stem
        if label in groups:
            label = f"{label} ({path})"
        groups[label] = trajectories
    return _report(args, groups, cost_model, next(iter(groups)), {"logs": list(args.compare)})


def _report(args: argparse.Namespace, groups: dict[str, list], cost_model: Any, reference: str,
            settings: dict[str, Any]) -> int:
    from pte_rl.pricing.jsonl import write_atomic
    from pte_rl.rollout.harness.probe import compare, markdown_table

    result = compare(groups, cost_model, reference)
    table = markdown_table(result)
    print(table, end="")
    if args.out:
        out = Path(args.out)
        result["settings"] = settings
        write_atomic(out / "harness.json", [json.dumps(result, indent=1, default=str)])
        write_atomic(out / "harness.md", [table])
        plot(result, out / "harness.png")
        print(f"wrote {out / 'harness.json'}, harness.md and harness.png", file=sys.stderr)
    return 0


def plot(result: dict[str, Any], path: Path) -> Path:
    """Accuracy and mean PTE per harness, the reference's as a dashed line (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pte_rl.training.plots import save_png

    rows = result["rows"]
    names = [r["harness"] for r in rows]
    fig = Figure(figsize=(max(6.0, 0.7 * len(rows) + 2), 6.4), layout="constrained")
    FigureCanvasAgg(fig)
    reference = next(r for r in rows if r["harness"] == result["reference"])
    for index, (key, title) in enumerate((("accuracy", "accuracy"), ("pte_mean", "mean PTE"))):
        axis = fig.add_subplot(2, 1, index + 1)
        values = [r[key] if r[key] is not None else 0.0 for r in rows]
        colours = ["tab:gray" if n == result["reference"] else "tab:blue" for n in names]
        axis.bar(range(len(rows)), values, color=colours)
        if reference[key] is not None:
            axis.axhline(reference[key], color="black", linestyle="--", linewidth=0.8)
        axis.set_ylabel(title)
        axis.set_xticks(range(len(rows)), names, rotation=30, ha="right")
    fig.suptitle(f"Harness probe (reference: {result['reference']})")
    return save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m pte_rl.cli.harness ARGS``: the same as ``pte-rl harness ARGS``."""
    from pte_rl.errors import InputError

    parser = argparse.ArgumentParser(prog="pte-rl")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["harness", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"pte-rl harness: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`pte-rl tiny`: find, build or ship the embedded tiny policy, offline and deterministically.

    pte-rl tiny build [--env arith] [--out DIR] [--seed S] [--force] [--threads N]
    pte-rl tiny path  [--env arith] [--seed S] [--threads N]   # where the cached build lives (built or not)
    pte-rl tiny ship  [--env arith] [--from DIR]               # make a build of the defaults the shipped copy

The default settings' builds of arith and facts ship in the package (pte_rl/tiny/default/,
pte_rl/tiny/facts/): `build` copies one into the cache (seconds) instead of building; other settings,
or --force, build from the seed (~10 minutes on two cores for arith, 45-75 for facts). After a change of
the settings, the environment or the build version, `pte-rl tiny build [--env E]` builds the new
default and `pte-rl tiny ship [--env E]` makes it the shipped copy (docs/tiny.md).

The directory printed last on stdout is the model path the recipe takes (``--model_name_or_path``).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tiny", help="build the embedded tiny policy (tokenizer + small Qwen2 + warm start)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="tiny_command", metavar="ACTION", required=True)
    for name, text in (("build", "copy the shipped default policy or build one (reusing a cached build with the "
                                 "same settings)"),
                       ("path", "print the cache directory of the tiny policy for these settings")):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--env", default="arith", help="environment name or path (default: arith)")
        action.add_argument("--seed", type=int, default=0, help="seed of the data, the weights and the batch order")
        action.add_argument("--steps", type=int, default=None, help="warm-start steps (default: the built-in setting)")
        action.add_argument("--threads", type=int, default=None,
                            help="torch threads of the build (default 2; another count builds another policy)")
        action.add_argument("--harnesses", default=None,
                            help="comma-separated harness variants the scripted chats are drawn from, one per chat "
                                 "(built-in names, training_family, or .yaml/.json files; default: the "
                                 "environment's own harness)")
        if name == "build":
            action.add_argument("--out", default=None,
                                help="output directory (default: $PTE_RL_CACHE or ~/.cache/pte_rl, tiny-<hash>)")
            action.add_argument("--force", action="store_true",
                                help="build from the seed even when a matching build is cached or shipped")
            action.add_argument("--quiet", action="store_true", help="print only the directory")
        action.set_defaults(func=_run)
    text = ("make a build of an environment's default settings its shipped copy (pte_rl/tiny/default/ for "
            "arith, pte_rl/tiny/facts/ for facts), with its file hashes")
    action = actions.add_parser("ship", help=text, description=text)
    action.add_argument("--env", default="arith", help="arith (default) or facts: whose default build ships")
    action.add_argument("--from", dest="source", default=None,
                        help="the build to ship (default: the cached build of the environment's default settings)")
    action.set_defaults(func=_ship)


def _run(args: argparse.Namespace) -> int:
    from pte_rl.cli import CLIError
    from pte_rl.tiny.build import build_tiny_policy
    from pte_rl.tiny.config import tiny_config, tiny_policy_path

    overrides = {"env": args.env, "seed": args.seed}
    if args.threads is not None:
        overrides["threads"] = args.threads
    if args.steps is not None:
        if args.steps < 1:
            raise CLIError(f"--steps: expected a positive integer, got {args.steps}")
        overrides["sft_steps"] = args.steps
    if args.harnesses:
        overrides["harnesses"] = tuple(h.strip() for h in args.harnesses.split(",") if h.strip())
    try:
        config = tiny_config(**overrides)
        if config.harnesses:  # an unknown variant or a name collision fails now, not after the copy drill
            from pte_rl.rollout.env import load_environment
            from pte_rl.tiny.data import harness_skins

            harness_skins(config, load_environment(config.env))
        if args.tiny_command == "path":
            print(tiny_policy_path(config))
            return 0
        log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
        path = build_tiny_policy(config, args.out, force=args.force, log=log)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        raise CLIError(str(exc)) from exc
    print(path)
    return 0


def _ship(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pte_rl.cli import CLIError
    from pte_rl.tiny.config import tiny_config, tiny_policy_path
    from pte_rl.tiny.shipped import SHIPPED_ENVS, ship

    if args.env not in SHIPPED_ENVS:
        raise CLIError(f"--env: expected one of {', '.join(SHIPPED_ENVS)} (the environments whose default build "
                       f"ships), got {args.env!r}")
    source = Path(args.source) if args.source else tiny_policy_path(tiny_config(args.env))
    destination = ship(source, env=args.env)
    print(f"shipped {source} as {destination}; commit it: git add {destination}",
          file=sys.stderr)
    print(destination)
    return 0

"""`pte-rl rollout`: run a model on an environment and write its trajectories as JSONL.

    pte-rl rollout --model DIR --env arith --n 50 --samples 2 --out runs/arith.jsonl
    pte-rl score runs/arith.jsonl --gamma 0.005 ; pte-rl patterns runs/arith.jsonl

Rows are the first ``--n`` of the chosen split (``--split eval`` by default: the held-out part),
each rolled out ``--samples`` times, in batches of ``--batch-size`` episodes through the same loop as
training (:func:`pte_rl.rollout.loop.run_rollouts`). ``--engine transformers`` runs ``model.generate``
(CPU or GPU); ``--engine vllm`` a standalone ``vllm.LLM`` with prefix caching, whose cached-prefix
counts are recorded for ``pte-rl score --cache measured``. Environment options are given as in the
training recipe, ``--env.options.NAME VALUE`` (or ``--env.options.NAME=VALUE``; values read as YAML),
bound against ``load_environment``'s signature and converted to the types it declares
(:func:`pte_rl.training.config.bind_env_options`).

The file is written atomically (complete or absent) in the interchange format of
:mod:`pte_rl.pricing.jsonl`, with exact per-turn ``usage``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pte_rl.cli import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollout", help="run a model on an environment, write trajectories (JSONL)",
        description="Run a model on an environment with the multi-turn tool loop; write trajectories as JSONL.",
    )
    parser.add_argument("--model", required=True, help="model directory (or hub name) with a chat-template tokenizer")
    parser.add_argument("--env", "--env.name", dest="env", required=True,
                        help="environment name (pte_rl/envs/<name>.py) or path to a .py file; its options: "
                             "--env.options.NAME VALUE (repeatable), as in the training recipe")
    parser.add_argument("--split", choices=("train", "eval"), default="eval", help="which split to draw rows from")
    parser.add_argument("--n", type=int, default=None, help="rows to roll out (default: the whole split)")
    parser.add_argument("--samples", type=int, default=1, help="episodes per row")
    parser.add_argument("--engine", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--device", default="auto", help="transformers engine: cpu, cuda, cuda:1, or auto")
    parser.add_argument("--dtype", default="auto", help="model dtype: auto, float32, bfloat16, float16")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes generated together")
    parser.add_argument("--max-turns", type=int, default=None, help="assistant turns per episode (default: env's)")
    parser.add_argument("--max-completion-length", type=int, default=1024,
                        help="token budget over all turns, generated + tool tokens")
    parser.add_argument("--max-tokens-per-turn", type=int, default=None, help="cap on one turn's generated tokens")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--tool-timeout", type=float, default=30.0, help="seconds per tool call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output JSONL file")
    parser.set_defaults(func=run, env_options={}, env_option_error=None)
    _accept_env_options(parser)


ENV_OPTION_PREFIX = "--env.options."


def _accept_env_options(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` take ``--env.options.NAME VALUE`` (any NAME) into ``args.env_options``.

    argparse has no option family with a free suffix, so these are taken out of the arguments
    before argparse parses the rest; the old ``--env-arg`` is recorded as an error for :func:`run`.
    """
    parse_known_args = parser.parse_known_args

    def parse(args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        from pte_rl.training.config import parse_scalar

        rest, options, error = [], {}, None
        tokens = list(args or [])
        while tokens:
            token = tokens.pop(0)
            key, sep, inline = token.partition("=")
            if key == "--env-arg":
                error = "--env-arg is no longer an option; use --env.options.NAME VALUE"
                if not sep and tokens:
                    tokens.pop(0)
            elif key.startswith(ENV_OPTION_PREFIX) and len(key) > len(ENV_OPTION_PREFIX):
                if not sep and (not tokens or tokens[0].startswith("--")):
                    error = f"{key} needs a value"
                    continue
                options[key.removeprefix(ENV_OPTION_PREFIX)] = parse_scalar(inline if sep else tokens.pop(0))
            else:
                rest.append(token)
        parsed, extras = parse_known_args(rest, namespace)
        parsed.env_options, parsed.env_option_error = options, error
        return parsed, extras

    parser.parse_known_args = parse  # type: ignore[method-assign,assignment]


def _transformers_backend(args: argparse.Namespace, tokenizer: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    from pte_rl.rollout.backends import TransformersBackend

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    # transformers decorates PreTrainedModel.to with @wraps(nn.Module.to), which its types read as the
    # unbound Module.to: the device is taken for `self`.
    model = model.to(device).eval()  # type: ignore[arg-type]
    return TransformersBackend(model, tokenizer)


def _vllm_backend(args: argparse.Namespace, tokenizer: Any) -> Any:
    from pte_rl.rollout.backends import VLLMBackend, eos_token_ids, load_vllm

    llm = load_vllm(args.model, seed=args.seed, dtype=args.dtype)
    return VLLMBackend(llm, eos_token_ids(tokenizer))


def run(args: argparse.Namespace) -> int:
    for name in ("n", "samples", "batch_size", "max_turns", "max_completion_length", "max_tokens_per_turn"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
    if args.env_option_error:
        raise CLIError(f"command line: {args.env_option_error}")
    from pte_rl.rollout.env import load_environment
    from pte_rl.training.config import bind_env_options

    options = bind_env_options(args.env, args.env_options, lambda key: f"command line (--{key})")
    try:
        env = load_environment(args.env, **options)
        split = env.split(args.split)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None

    from transformers import AutoTokenizer, set_seed

    from pte_rl.pricing.jsonl import write_trajectories
    from pte_rl.rollout.backends import SamplingConfig
    from pte_rl.rollout.loop import RolloutConfig, TaskInfo, run_rollouts

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.chat_template is None:
        raise CLIError(f"--model {args.model}: the tokenizer has no chat template")
    backend = _vllm_backend(args, tokenizer) if args.engine == "vllm" else _transformers_backend(args, tokenizer)
    rows = split.select(range(min(args.n, len(split)))) if args.n is not None else split
    episodes = [(row, k) for row in rows for k in range(args.samples)]
    config = RolloutConfig(
        max_turns=args.max_turns or env.max_turns, max_completion_length=args.max_completion_length,
        max_tokens_per_turn=args.max_tokens_per_turn, tool_timeout_s=args.tool_timeout,
        sampling=SamplingConfig(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k),
    )
    metadata = {"env": env.name, "model": args.model, "engine": args.engine, "split": args.split,
                "temperature": args.temperature, "seed": args.seed}
    trajectories, start = [], time.perf_counter()
    for first in range(0, len(episodes), args.batch_size):
        batch = episodes[first:first + args.batch_size]
        results = run_rollouts(
            [row["prompt"] for row, _ in batch], backend, tokenizer, env.tools, config, check_answer=env.check_answer,
            tasks=[TaskInfo(row["ground_truth"], row["task_id"]) for row, _ in batch],
            ids=[f"{row['task_id']}/{k}" for row, k in batch], metadata=metadata,
        )
        trajectories += [r.trajectory for r in results]
    write_trajectories(args.out, trajectories)
    graded = [t.correct for t in trajectories if t.correct is not None]
    turns = sum(len(t.turns) for t in trajectories) / max(1, len(trajectories))
    calls = sum(t.num_tool_calls for t in trajectories) / max(1, len(trajectories))
    decoded = sum(t.decode_tokens for t in trajectories) / max(1, len(trajectories))
    accuracy = f"{sum(graded) / len(graded):.3f}" if graded else "n/a"
    print(f"wrote {len(trajectories)} trajectories to {args.out} in {time.perf_counter() - start:.1f} s: "
          f"accuracy {accuracy}, {turns:.2f} turns, {calls:.2f} tool calls, {decoded:.1f} generated tokens per episode")
    return 0


"""GRPO with a PTE-aware reward: train a tool-using agent to be right *and* cheap to serve.

    accelerate launch --config_file launch/accelerate_cpu.yaml recipes/grpo_pte.py    # the default (make run)
    accelerate launch recipes/grpo_pte.py --reward.preset correctness --seed 1 --output_dir runs/c-s1
    accelerate launch --config_file launch/accelerate_1gpu.yaml recipes/grpo_pte.py \
        --config recipes/configs/qwen2.5-1.5b-math-vllm.yaml
    accelerate launch --config_file launch/deepspeed_zero3.yaml recipes/grpo_pte.py \
        --config recipes/configs/qwen2.5-7b-math-vllm-server.yaml
    accelerate launch --config_file launch/accelerate_cpu_2proc.yaml recipes/grpo_pte.py   # 2 CPU processes
    python recipes/grpo_pte.py --config recipes/configs/qwen2.5-1.5b-math-vllm.yaml --dry_run true

Configuration: ``--config FILE.yaml`` (default: configs/default.yaml beside this file), then
``--key value`` or ``--key=value`` overrides, dotted for the recipe's sections (values read as YAML)::

    --env.name facts   --env.options.n_train 500   --env.max_turns 6
    --reward.preset tokens   --reward.overrides.pte.weight 0.3
    --pricing.gamma 0.004   --pricing.hardware h200   --eval.n 50   --eval.only true
    --patterns.compute_tools [run_code]   --patterns.tool_families false   --credit turn
    --harness.variants [training,renamed,pythonic]   --harness.per rollout    # harness randomisation
    --learning_rate 1e-4   --max_steps 20   --resume_from_checkpoint true    # TRL's GRPOConfig, flat

The fields are documented in pte_rl/training/config.py and sections.py. A bad key or value, an
unknown environment option, a data file that is not there, a missing preset, a model directory
without config.json, or ``model_name_or_path: tiny`` with an environment that has no
``scripted_trajectories`` ends with exit status 2 and a file:line / field message before anything
long starts.

``--dry_run true`` (the tree's ``dry_run`` field) resolves everything a run would and trains nothing:
the policy's config.json (architecture, layers, width, heads, estimated parameters; for ``tiny`` its
cache path and whether it is built, never building it) and its tokenizer with the environment's tools
in the chat template, the environment and both splits, gamma and its derivation, the reward preset
and its ordering check, TRL's GRPOConfig (built as training builds it), and the launch topology
(accelerate's processes, distributed type, mixed precision; vLLM mode and server; DeepSpeed). It
prints that resolved configuration as YAML and exits 0, or exits 2 on the first problem. It loads no
weights and writes nothing. On a machine without a GPU, GRPOConfig is built with ``use_cpu`` so that
a GPU config still resolves; what would need a GPU (bf16, vLLM) is listed under
``derived.warnings`` (and on stderr). The printed YAML has the shape of the run's config.yaml, its
``derived`` section extended with ``policy``, ``environment``, ``launch`` and ``warnings``.

An environment without a held-out split (``eval_dataset`` None) trains without evaluation: the
recipe says so in one line before anything long starts (``--eval.only`` then exits 2).

Top to bottom: parse and check the config -> check the policy -> resolve the policy (building the
embedded tiny one if asked) -> load the environment -> price a token once (pte_rl.pricing.resolve) ->
load the reward preset with that price -> save the resolved config -> evaluate the start -> GRPO with
pte_rl's multi-turn rollout -> save and evaluate the final policy.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"
Where = Callable[[str], str]


@dataclass
class Setup:
    """Everything resolved before training: the config, TRL's arguments, the policy, env, price, reward."""

    config: Any  # pte_rl.training.config.RecipeConfig
    training: Any  # trl.GRPOConfig
    model_path: str
    env: Any
    cost_model: Any
    pricing: dict
    reward_funcs: list
    reward: dict
    held_out: bool = True
    """Whether the environment has a held-out split to evaluate on."""


def read_command_line(argv: list[str]) -> tuple[Any, Any]:
    """(RecipeArgs, RecipeConfig) of a command line: every key, env option and the preset checked."""
    from pte_rl.training.config import bind, parse_recipe_args

    args = parse_recipe_args(argv, DEFAULT_CONFIG)
    return args, bind(args)


def parse_args(argv: list[str]) -> tuple[Any, Any]:
    """(RecipeConfig, GRPOConfig) of a command line; every key and env option checked."""
    args, config = read_command_line(argv)
    return config, training_arguments(args.training, args.training_argv, source=args.source)


def training_arguments(defaults: dict, argv: list[str], source: str = "config") -> Any:
    """TRL's GRPOConfig: the file's flat keys as defaults, then TRL's own ``--key value`` parsing.

    GRPOConfig's own checks (bf16 on a machine without a GPU, ...) are input errors naming ``source``.
    """
    from transformers import HfArgumentParser
    from trl import GRPOConfig

    from pte_rl.errors import InputError

    parser = HfArgumentParser(GRPOConfig)
    parser.set_defaults(**defaults)
    try:
        (training,) = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as exc:
        raise InputError(f"{source} (TRL's GRPOConfig keys): {exc}") from None
    training.resume_from_checkpoint = resume_target(training.resume_from_checkpoint)
    return training


def resume_target(value: Any) -> Any:
    """``--resume_from_checkpoint true`` resumes from the newest checkpoint-* in output_dir."""
    text = str(value).lower() if value is not None else ""
    if value is True or text in ("true", "1", "yes"):
        return True
    return None if value is False or text in ("false", "0", "no", "", "none") else value


def check_policy(config: Any, where: Where) -> None:
    """Fail at once on a policy that cannot be: a model dir without config.json, a path that is not
    there, or ``tiny`` with an environment that cannot script its warm start."""
    from pte_rl.errors import InputError
    from pte_rl.rollout.env import load_module, resolve_environment

    name, field = config.model_name_or_path, "field 'model_name_or_path'"
    if name == "tiny":
        if not callable(getattr(load_module(config.env.name), "scripted_trajectories", None)):
            raise InputError(
                f"{where('model_name_or_path')}: {field}: `tiny` builds a policy from the environment's scripted "
                f"chats, and {resolve_environment(config.env.name)} defines no scripted_trajectories; pass a "
                f"local model directory or a hub name (--model_name_or_path DIR), or write "
                f"scripted_trajectories(seed, n, mix=None) in the environment (see docs/tiny.md)")
        return
    path = Path(name).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise InputError(f"{where('model_name_or_path')}: {field}: {name} is a directory without config.json; "
                         f"expected a Hugging Face model directory (config.json, weights, tokenizer), a hub name "
                         f"or `tiny`")
    if path.is_file() or (not path.exists() and (name.startswith(("/", ".", "~")) or name.count("/") > 1)):
        raise InputError(f"{where('model_name_or_path')}: {field}: {name}: no such model directory; expected a "
                         f"Hugging Face model directory, a hub name (Org/Model) or `tiny`")


def resolve_policy(config: Any, state: Any) -> str:
    """A local dir or hub name, or the embedded tiny policy (built once, on the main process)."""
    if config.model_name_or_path != "tiny":
        return config.model_name_or_path
    from pte_rl.tiny.build import build_tiny_policy
    from pte_rl.tiny.config import tiny_config

    with state.main_process_first():
        return str(build_tiny_policy(tiny_config(config.env.name), out=config.tiny_dir))


def model_config(model_path: str, gamma: float | None, where: Where = lambda key: "command line") -> str | None:
    """The policy's config.json, which gamma is derived from (none needed for a fixed gamma)."""
    if gamma is not None or Path(model_path).exists():
        return None if gamma is not None else model_path
    return hub_file(model_path, "config.json", where)


def hub_file(model: str, filename: str, where: Where) -> str:
    """A file of a hub model (cached); one that cannot be fetched is an input error naming the field."""
    from huggingface_hub import hf_hub_download

    from pte_rl.errors import InputError

    try:
        return hf_hub_download(model, filename)
    except (OSError, ValueError) as exc:  # offline without a cache, no such repo, a malformed name
        raise InputError(f"{where('model_name_or_path')}: field 'model_name_or_path': {model}: no local directory, "
                         f"and the hub could not give its {filename} ({type(exc).__name__}); download it first "
                         f"(hf download {model}) or pass a local model directory") from None


def load_env(config: Any, where: Where) -> Any:
    """The environment; its input errors name the option (``env.options.dataset``) and where it was set."""
    import re

    from pte_rl.errors import InputError
    from pte_rl.rollout.env import load_environment

    try:
        return load_environment(config.env.name, **config.env.options)
    except InputError as exc:
        blamed = re.match(r"field '(\w+)': (.*)", str(exc), re.S)
        if blamed:
            key = f"env.options.{blamed.group(1)}"
            raise InputError(f"{where(key)}: field '{key}': {blamed.group(2)}") from None
        raise InputError(f"{where('env.options')}: environment {config.env.name}: {exc}") from None


def harness_family(config: Any, env: Any, where: Where) -> Any:
    """The harness family training draws from (None: off), each member checked against the environment's
    tools (a variant naming no real tool, or colliding two tools' names, fails here)."""
    from pte_rl.errors import InputError
    from pte_rl.rollout.harness import make_skin

    try:
        family = config.harness.build()
        for harness in family.members if family else ():
            make_skin(harness, env.tools, env.check_answer)
    except InputError as exc:
        fields = ("variants", "tool_names", "argument_names", "descriptions", "syntaxes", "per", "seed")
        place = next((p for p in (where(f"harness.{f}") for f in fields) if p != where("harness")), where("harness"))
        raise InputError(f"{place}: field 'harness': {exc}") from None
    return family


def prepare(config: Any, training: Any, state: Any, where: Where = lambda key: "command line") -> Setup:
    """Policy, environment, the price of a token (once) and the reward functions priced with it."""
    env = load_env(config, where)  # before the policy: a bad data path fails before a tiny build
    harness_family(config, env, where)
    held_out = env.eval_dataset is not None and len(env.eval_dataset) > 0
    if not held_out:
        if config.eval.only:
            from pte_rl.errors import InputError

            raise InputError(f"{where('eval.only')}: field 'eval.only': environment {env.name} has no held-out "
                             f"split (eval_dataset is None): nothing to evaluate")
        if state.is_main_process:
            print(f"grpo_pte.py: environment {env.name} has no held-out split (eval_dataset is None): no "
                  f"evaluation at the start or the end of this run", file=sys.stderr)
    model_path = resolve_policy(config, state)
    cost_model, pricing, reward_funcs, reward = price_and_reward(config, env, model_config(
        model_path, config.pricing.gamma, where), training)
    return Setup(config, training, model_path, env, cost_model, pricing, reward_funcs, reward, held_out)


def price_and_reward(config: Any, env: Any, model_json: str | None, training: Any) -> tuple[Any, dict, list, dict]:
    """The run's cost model and its derivation, and the preset's reward functions priced with it."""
    from pte_rl.pricing.resolve import resolve_pricing
    from pte_rl.rewards import load_preset

    cost_model, pricing = resolve_pricing(config.pricing, model_json)
    reward_funcs, weights, reward = load_preset(config.reward.preset, config.reward.overrides,
                                                cost_model=cost_model, checker=env.check_answer)
    training.reward_weights = weights
    return cost_model, pricing, reward_funcs, reward


def resolved_config(setup: Setup) -> dict:
    """The tree with the price resolved, GRPOConfig's settings, what was derived (plain data)."""
    from pte_rl.training.config import config_to_dict

    resolved = config_to_dict(setup.config)
    resolved["pricing"].update(gamma=setup.cost_model.gamma, delta=setup.cost_model.delta)
    resolved.update(seed=setup.training.seed, run_name=setup.training.run_name, training=setup.training.to_dict(),
                    derived={"model_path": setup.model_path, "pricing": setup.pricing, "reward": setup.reward})
    return resolved


def save_config(setup: Setup, output_dir: Path) -> None:
    """output_dir/config.yaml: :func:`resolved_config`."""
    from pte_rl.training.tracking import save_resolved_config

    save_resolved_config(output_dir, resolved_config(setup))


def dry_run_training(args: Any) -> tuple[Any, list[str]]:
    """GRPOConfig built as training builds it; without a GPU, with ``use_cpu`` and a warning for what
    would need one, so that a GPU config still resolves here."""
    import torch

    argv, warnings = list(args.training_argv), []
    if not torch.cuda.is_available() and not args.training.get("use_cpu") and "--use_cpu" not in argv:
        argv += ["--use_cpu", "true"]
        warnings.append("no GPU here: GRPOConfig was built with use_cpu true to check the rest")
    training = training_arguments(args.training, argv, source=args.source)
    if not torch.cuda.is_available():
        for name in ("bf16", "fp16"):
            if getattr(training, name):
                warnings.append(f"{name}: true needs a GPU; a run on this machine would stop in GRPOConfig")
    return training, warnings


def describe_policy(config: Any, where: Where) -> tuple[str | None, dict]:
    """(the policy's directory or hub name, or None for an unbuilt tiny one; what its config.json says)."""
    from pte_rl.pricing.model_config import estimate_active_params, load_config, model_shape

    name = config.model_name_or_path
    if name == "tiny":
        from pte_rl.tiny.config import is_built, tiny_config, tiny_policy_path

        path = Path(config.tiny_dir) if config.tiny_dir else tiny_policy_path(tiny_config(config.env.name))
        info: dict[str, Any] = {"tiny": str(path), "built": is_built(path)}
        if not info["built"]:
            return None, info
        name = str(path)
    config_json = name if Path(name).exists() else hub_file(name, "config.json", where)
    data, _ = load_config(config_json)
    shape, active = model_shape(config_json), estimate_active_params(config_json)
    embedding = 0 if data.get("tie_word_embeddings") else data.get("vocab_size", 0) * shape.hidden_size
    return name, {**(info if config.model_name_or_path == "tiny" else {}), "config": str(config_json),
                  "architecture": (data.get("architectures") or [data.get("model_type")])[0],
                  "model_type": shape.model_type, "layers": shape.num_layers, "hidden_size": shape.hidden_size,
                  "attention_heads": shape.num_attention_heads, "kv_heads": shape.num_key_value_heads,
                  "vocab_size": data.get("vocab_size"), "tied_embeddings": bool(data.get("tie_word_embeddings")),
                  "active_params_estimate": active.total, "params_estimate": active.total + embedding}


def dry_run(args: Any, config: Any) -> dict:
    """Everything a run would resolve, as plain data (see the module docstring); loads no weights."""
    from pte_rl.errors import InputError
    from pte_rl.training.describe import describe_env, describe_launch, describe_tokenizer

    training, warnings = dry_run_training(args)
    env = load_env(config, args.where)
    family = harness_family(config, env, args.where)
    model_path, policy = describe_policy(config, args.where)
    if model_path is None and config.pricing.gamma is None:
        raise InputError(f"{args.where('pricing.gamma')}: field 'pricing.gamma': null derives gamma from the "
                         f"policy's config.json, and the tiny policy is not built yet; build it (pte-rl tiny build) "
                         f"or give a gamma")
    if model_path is not None:
        policy["tokenizer"] = describe_tokenizer(model_path, env, args.where)
    cost_model, pricing, _, reward = price_and_reward(config, env, model_config(
        model_path or "tiny", config.pricing.gamma, args.where), training)
    if env.eval_dataset is None or not len(env.eval_dataset):
        warnings.append(f"environment {env.name} has no held-out split: the run would not evaluate")
    setup = Setup(config, training, model_path or policy["tiny"], env, cost_model, pricing, [], reward)
    resolved = resolved_config(setup)
    resolved["derived"].update(policy=policy, environment=describe_env(env),
                               harness_family=[h.name for h in family.members] if family else None,
                               launch=describe_launch(training, warnings), warnings=warnings)
    return json.loads(json.dumps(resolved, default=str))


def evaluate(setup: Setup, model: str, out: Path) -> dict:
    """The held-out evaluation of ``model``, priced with the run's cost model."""
    from transformers import AutoTokenizer

    from pte_rl.training.evaluate import evaluate_policy

    config = setup.config
    return evaluate_policy(
        model, AutoTokenizer.from_pretrained(setup.model_path), setup.env, out, cost_model=setup.cost_model,
        n=config.eval.n, samples=config.eval.samples, temperature=config.eval.temperature,
        max_turns=config.env.max_turns or setup.env.max_turns,
        max_completion_length=setup.training.max_completion_length, seed=setup.training.seed,
        patterns=config.patterns.build(), device="cpu" if setup.training.use_cpu else None,
        dtype=str((setup.training.model_init_kwargs or {}).get("dtype", "float32")),  # the trainer's, as TRL loads it
    )


def evaluate_again(setup: Setup, output_dir: Path, state: Any) -> None:
    """``--eval.only true``: evaluate output_dir/final (and the start) again; train nothing."""
    final_dir = output_dir / "final"
    if not (final_dir / "config.json").is_file():
        raise SystemExit(f"--eval.only: {final_dir} holds no trained policy (config.json); train the run first")
    if state.is_main_process:
        if setup.config.eval.at_start:
            evaluate(setup, setup.model_path, output_dir / "eval_start")
        print(json.dumps({"eval": evaluate(setup, str(final_dir), output_dir / "eval")}, default=str))


def train(setup: Setup, output_dir: Path, state: Any) -> None:
    """GRPO with pte_rl's multi-turn rollout; the final policy and its held-out evaluation (if it has one)."""
    # trl's trainer is imported here: it takes ~45 s of CPU, which --eval.only does not need.
    from transformers import AutoTokenizer

    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.training.tracking import LocalMetricsCallback
    from pte_rl.training.trainer import grpo_trainer_class

    callback = LocalMetricsCallback(output_dir, cost_model=setup.cost_model, patterns=setup.config.patterns.build())
    max_turns = setup.config.env.max_turns or setup.env.max_turns
    tokenizer = AutoTokenizer.from_pretrained(setup.model_path)
    trainer = grpo_trainer_class(setup.config.correct_advantage_floor, credit=setup.config.credit,
                                 cost_model=setup.cost_model)(
        model=setup.model_path, reward_funcs=setup.reward_funcs, args=setup.training,
        train_dataset=setup.env.dataset, processing_class=tokenizer,
        rollout_func=callback.observe(make_rollout_func(
            setup.env, max_turns=max_turns, harness_family=harness_family(setup.config, setup.env, lambda key: key))),
        callbacks=[callback],
    )
    trainer.train(resume_from_checkpoint=setup.training.resume_from_checkpoint)
    final_dir = output_dir / "final"
    trainer.save_model(str(final_dir))
    if state.is_main_process:
        tokenizer.save_pretrained(str(final_dir))
        if setup.held_out:
            summary = evaluate(setup, str(final_dir), output_dir / "eval")
            callback.log_eval(summary)
            print(json.dumps({"eval": summary}, default=str))


def main(argv: list[str] | None = None) -> None:
    from pte_rl.errors import InputError

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    try:
        args, config = read_command_line(argv)
        check_policy(config, args.where)
        if config.dry_run:
            print_dry_run(dry_run(args, config))
            return
        training = training_arguments(args.training, args.training_argv, source=args.source)
    except InputError as exc:
        print(f"grpo_pte.py: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    from pte_rl.training.tracking import init_wandb_env

    init_wandb_env(training.report_to, training.output_dir)
    import torch
    from accelerate import PartialState

    state, output_dir = PartialState(), Path(training.output_dir)
    torch.manual_seed(training.seed)
    try:
        setup = prepare(config, training, state, args.where)
    except InputError as exc:  # a bad data path, reward override or hardware profile: still before anything long
        print(f"grpo_pte.py: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if config.eval.only:
        evaluate_again(setup, output_dir, state)
        state.wait_for_everyone()
        return
    if state.is_main_process:
        save_config(setup, output_dir)
        if setup.held_out and config.eval.at_start and not (output_dir / "eval_start" / "summary.json").exists():
            evaluate(setup, setup.model_path, output_dir / "eval_start")
    state.wait_for_everyone()
    train(setup, output_dir, state)
    state.wait_for_everyone()


def print_dry_run(resolved: dict) -> None:
    """The resolved configuration as YAML on stdout (main process), its warnings on stderr."""
    import yaml
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    for warning in resolved["derived"]["warnings"]:
        print(f"grpo_pte.py: dry run: warning: {warning}", file=sys.stderr)
    print(yaml.safe_dump(resolved, sort_keys=False, width=110), end="")


if __name__ == "__main__":
    main()

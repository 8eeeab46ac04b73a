"""GRPO with a PTE-aware reward: train a tool-using agent to be right *and* cheap to serve.

    accelerate launch --config_file launch/accelerate_cpu.yaml recipes/grpo_pte.py    # the default (make run)
    accelerate launch recipes/grpo_pte.py --reward.preset correctness --seed 1 --output_dir runs/c-s1
    accelerate launch --config_file launch/accelerate_1gpu.yaml recipes/grpo_pte.py \
        --config recipes/configs/qwen2.5-1.5b-math-vllm.yaml
    accelerate launch --config_file launch/deepspeed_zero3.yaml recipes/grpo_pte.py \
        --config recipes/configs/qwen2.5-7b-math-vllm-server.yaml
    accelerate launch --config_file launch/accelerate_cpu_2proc.yaml recipes/grpo_pte.py   # 2 CPU processes

Configuration: ``--config FILE.yaml`` (default: configs/default.yaml beside this file), then
``--key value`` or ``--key=value`` overrides, dotted for the recipe's sections (values read as YAML)::

    --env.name facts   --env.options.n_train 500   --env.max_turns 6
    --reward.preset tokens   --reward.overrides.pte.weight 0.3
    --pricing.gamma 0.004   --pricing.hardware h200   --eval.n 50   --eval.only true
    --patterns.compute_tools [run_code]   --patterns.tool_families false
    --learning_rate 1e-4   --max_steps 20   --resume_from_checkpoint true    # TRL's GRPOConfig, flat

The fields are documented in pte_rl/training/config.py. A bad key or value, an unknown environment
option or a missing preset ends with exit status 2 and a file:line / field message before anything
long starts.

Top to bottom: parse and check the config -> resolve the policy (building the embedded tiny one if
asked) -> load the environment -> price a token once (pte_rl.pricing.resolve) -> load the reward
preset with that price -> save the resolved config -> evaluate the start -> GRPO with pte_rl's
multi-turn rollout -> save and evaluate the final policy.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"


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


def parse_args(argv: list[str]) -> tuple[Any, Any]:
    """(RecipeConfig, GRPOConfig) of a command line; every key and env option checked."""
    from pte_rl.training.config import bind, parse_recipe_args

    args = parse_recipe_args(argv, DEFAULT_CONFIG)
    return bind(args), training_arguments(args.training, args.training_argv)


def training_arguments(defaults: dict, argv: list[str]) -> Any:
    """TRL's GRPOConfig: the file's flat keys as defaults, then TRL's own ``--key value`` parsing."""
    from transformers import HfArgumentParser
    from trl import GRPOConfig

    parser = HfArgumentParser(GRPOConfig)
    parser.set_defaults(**defaults)
    (training,) = parser.parse_args_into_dataclasses(args=argv)
    training.resume_from_checkpoint = resume_target(training.resume_from_checkpoint)
    return training


def resume_target(value: Any) -> Any:
    """``--resume_from_checkpoint true`` resumes from the newest checkpoint-* in output_dir."""
    text = str(value).lower() if value is not None else ""
    if value is True or text in ("true", "1", "yes"):
        return True
    return None if value is False or text in ("false", "0", "no", "", "none") else value


def resolve_policy(config: Any, state: Any) -> str:
    """A local dir or hub name, or the embedded tiny policy (built once, on the main process)."""
    if config.model_name_or_path != "tiny":
        return config.model_name_or_path
    from pte_rl.tiny.build import TinyConfig, build_tiny_policy

    with state.main_process_first():
        return str(build_tiny_policy(TinyConfig(env=config.env.name), out=config.tiny_dir))


def model_config(model_path: str, gamma: float | None) -> str | None:
    """The policy's config.json, which gamma is derived from (none needed for a fixed gamma)."""
    if gamma is not None or Path(model_path).exists():
        return None if gamma is not None else model_path
    from huggingface_hub import hf_hub_download  # a hub name: its config.json, cached

    return hf_hub_download(model_path, "config.json")


def prepare(config: Any, training: Any, state: Any) -> Setup:
    """Policy, environment, the price of a token (once) and the reward functions priced with it."""
    from pte_rl.pricing.resolve import resolve_pricing
    from pte_rl.rewards import load_preset
    from pte_rl.rollout.env import load_environment

    model_path = resolve_policy(config, state)
    env = load_environment(config.env.name, **config.env.options)
    cost_model, pricing = resolve_pricing(config.pricing, model_config(model_path, config.pricing.gamma))
    reward_funcs, weights, reward = load_preset(config.reward.preset, config.reward.overrides,
                                                cost_model=cost_model, checker=env.check_answer)
    training.reward_weights = weights
    return Setup(config, training, model_path, env, cost_model, pricing, reward_funcs, reward)


def save_config(setup: Setup, output_dir: Path) -> None:
    """output_dir/config.yaml: the tree with the price resolved, GRPOConfig's settings, what was derived."""
    from pte_rl.training.config import config_to_dict
    from pte_rl.training.tracking import save_resolved_config

    resolved = config_to_dict(setup.config)
    resolved["pricing"].update(gamma=setup.cost_model.gamma, delta=setup.cost_model.delta)
    resolved.update(seed=setup.training.seed, run_name=setup.training.run_name, training=setup.training.to_dict(),
                    derived={"model_path": setup.model_path, "pricing": setup.pricing, "reward": setup.reward})
    save_resolved_config(output_dir, resolved)


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
        patterns=config.patterns.build(),
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
    """GRPO with pte_rl's multi-turn rollout; the final policy and its held-out evaluation."""
    # trl's trainer is imported here: it takes ~45 s of CPU, which --eval.only does not need.
    from transformers import AutoTokenizer

    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.training.tracking import LocalMetricsCallback
    from pte_rl.training.trainer import grpo_trainer_class

    callback = LocalMetricsCallback(output_dir, cost_model=setup.cost_model, patterns=setup.config.patterns.build())
    max_turns = setup.config.env.max_turns or setup.env.max_turns
    tokenizer = AutoTokenizer.from_pretrained(setup.model_path)
    trainer = grpo_trainer_class(setup.config.correct_advantage_floor)(
        model=setup.model_path, reward_funcs=setup.reward_funcs, args=setup.training,
        train_dataset=setup.env.dataset, processing_class=tokenizer,
        rollout_func=callback.observe(make_rollout_func(setup.env, max_turns=max_turns)), callbacks=[callback],
    )
    trainer.train(resume_from_checkpoint=setup.training.resume_from_checkpoint)
    final_dir = output_dir / "final"
    trainer.save_model(str(final_dir))
    if state.is_main_process:
        tokenizer.save_pretrained(str(final_dir))
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
        config, training = parse_args(argv)
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
        setup = prepare(config, training, state)
    except InputError as exc:  # a bad reward override or hardware profile: still before anything long
        print(f"grpo_pte.py: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if config.eval.only:
        evaluate_again(setup, output_dir, state)
        state.wait_for_everyone()
        return
    if state.is_main_process:
        save_config(setup, output_dir)
        if config.eval.at_start and not (output_dir / "eval_start" / "summary.json").exists():
            evaluate(setup, setup.model_path, output_dir / "eval_start")
    state.wait_for_everyone()
    train(setup, output_dir, state)
    state.wait_for_everyone()


if __name__ == "__main__":
    main()

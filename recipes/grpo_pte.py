"""GRPO with a PTE-aware reward: train a tool-using agent to be right *and* cheap to serve.

    accelerate launch recipes/grpo_pte.py                          # embedded default: tiny policy, arith, CPU
    accelerate launch recipes/grpo_pte.py --reward_preset correctness --seed 1 --output_dir runs/c-s1
    accelerate launch --config_file launch/accelerate_1gpu.yaml recipes/grpo_pte.py \
        --config recipes/configs/qwen2.5-1.5b-math-vllm.yaml
    accelerate launch --config_file launch/deepspeed_zero3.yaml recipes/grpo_pte.py \
        --config recipes/configs/qwen2.5-7b-math-vllm-server.yaml
    accelerate launch --config_file launch/accelerate_cpu_2proc.yaml recipes/grpo_pte.py   # 2 CPU processes

Configuration follows TRL's conventions: `--config FILE.yaml` (default: recipes/configs/default.yaml),
then `--key value` overrides of any field of `PTEScriptArguments` below or of TRL's `GRPOConfig`.

Top to bottom: resolve the policy (building the embedded tiny one if asked) -> load the environment ->
price it (gamma from the model config and a hardware profile) -> load the reward preset -> wire pte_rl's
multi-turn `rollout_func` into TRL's `GRPOTrainer` -> evaluate on held-out problems before and after.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "recipes" / "configs" / "default.yaml"


@dataclass
class PTEScriptArguments:
    """What pte_rl adds to TRL's GRPOConfig. Every field can be set in the YAML or as `--field value`."""

    model_name_or_path: str = field(
        default="tiny", metadata={"help": "A local model dir or hub name; `tiny` builds the embedded tiny policy."}
    )
    tiny_dir: str | None = field(
        default=None, metadata={"help": "Where the tiny policy is cached (default: $PTE_RL_CACHE or ~/.cache/pte_rl)."}
    )
    env_name: str = field(default="arith", metadata={"help": "Environment name in envs/ or a path to a .py file."})
    env_kwargs: str = field(default="{}", metadata={"help": "JSON object of keyword arguments for load_environment."})
    reward_preset: str = field(default="pte", metadata={"help": "Preset name in rewards/ or a path to a YAML file."})
    reward_overrides: list[str] = field(
        default_factory=list, metadata={"help": "Preset overrides, e.g. pte.weight=0.5 pte.options.method=budget."}
    )
    max_turns: int = field(default=4, metadata={"help": "Assistant turns per rollout before it is cut."})
    hardware: str = field(default="h100_pcie", metadata={"help": "Hardware profile that prices PTE (pte-rl hardware)."})
    gamma_mode: str = field(default="paper", metadata={"help": "gamma from the model config: paper or kv_bytes."})
    pte_gamma: float | None = field(default=None, metadata={"help": "Fixed gamma; overrides model config + hardware."})
    eval_n: int = field(default=100, metadata={"help": "Held-out problems evaluated before and after training."})
    eval_samples: int = field(default=3, metadata={"help": "Samples per held-out problem."})
    eval_temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the evaluation."})
    eval_at_start: bool = field(default=True, metadata={"help": "Also evaluate the starting policy (eval_start/)."})
    correct_advantage_floor: float | None = field(
        default=None,
        metadata={"help": "If set (e.g. 0.0), a correct rollout's GRPO advantage is raised to at least this: an "
                          "efficiency penalty then rewards cheaper correct rollouts and never pushes down a correct "
                          "one (pte_rl.training.trainer)."},
    )
    eval_only: bool = field(
        default=False,
        metadata={"help": "Do not train: evaluate output_dir/final (and the starting policy) again with the eval_* "
                          "settings, overwriting eval/ and eval_start/; config.yaml and the checkpoints stay."},
    )


def parse_args(argv: list[str]):
    from trl import GRPOConfig, TrlParser

    if "--config" not in argv:
        argv = ["--config", str(DEFAULT_CONFIG), *argv]
    parser = TrlParser((PTEScriptArguments, GRPOConfig))
    return parser.parse_args_and_config(argv)


def main(argv: list[str] | None = None) -> None:
    script_args, training_args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

    from pte_rl.training.tracking import init_wandb_env

    init_wandb_env(training_args.report_to, training_args.output_dir)

    import torch
    from accelerate import PartialState
    from transformers import AutoTokenizer

    from pte_rl.pricing.cost import CostModel
    from pte_rl.rollout.env import load_environment
    from pte_rl.training.evaluate import evaluate_policy
    from pte_rl.pricing.gamma import resolve_gamma
    from pte_rl.training.tracking import LocalMetricsCallback, save_resolved_config
    from pte_rl.rewards import load_preset
    from pte_rl.tiny.build import TinyConfig, build_tiny_policy
    from pte_rl.rollout.trl_driver import make_rollout_func

    state = PartialState()
    output_dir = Path(training_args.output_dir)
    torch.manual_seed(training_args.seed)

    # 1. The policy: a local dir or hub name, or the embedded tiny policy (built once, on the main process).
    env_kwargs = json.loads(script_args.env_kwargs)
    model_path = script_args.model_name_or_path
    if model_path == "tiny":
        with state.main_process_first():
            model_path = str(build_tiny_policy(TinyConfig(env=script_args.env_name), out=script_args.tiny_dir))
    tokenizer = AutoTokenizer.from_pretrained(model_path)

    # 2. The environment: train prompts, held-out prompts, tools and the answer checker.
    env = load_environment(script_args.env_name, **env_kwargs)

    # 3. The price of a token: gamma from the model's config and the hardware profile (or fixed).
    if script_args.pte_gamma is not None:
        gamma, delta = script_args.pte_gamma, 0.0
        derivation = {"gamma": gamma, "mode": "fixed (pte_gamma)"}
    else:
        result = resolve_gamma(model_path, script_args.hardware, mode=script_args.gamma_mode)
        gamma, delta, derivation = result.gamma, 0.0, result.to_dict()
    cost_model = CostModel(gamma=gamma, delta=delta)

    # 4. The reward: a preset from rewards/, with command-line overrides.
    reward_funcs, reward_weights, reward_config = load_preset(
        script_args.reward_preset, script_args.reward_overrides, gamma=gamma, checker=env.check_answer
    )
    training_args.reward_weights = reward_weights

    # 5. Save the resolved configuration before anything long starts.
    resolved = {
        **asdict(script_args),
        "model_path": model_path,
        "seed": training_args.seed,
        "gamma": gamma,
        "gamma_derivation": derivation,
        "reward": reward_config,
        "training": training_args.to_dict(),
    }
    if state.is_main_process and not script_args.eval_only:
        save_resolved_config(output_dir, resolved)

    eval_options = {
        "n": script_args.eval_n, "samples": script_args.eval_samples, "temperature": script_args.eval_temperature,
        "max_turns": script_args.max_turns, "max_completion_length": training_args.max_completion_length,
        "cost_model": cost_model, "seed": training_args.seed,
    }
    # `--resume_from_checkpoint true` resumes from the newest checkpoint-* in output_dir.
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "1", "yes"):
        resume = True
    elif isinstance(resume, str) and resume.lower() in ("false", "0", "no", ""):
        resume = None
    if script_args.eval_only:  # a finished run evaluated again, e.g. on more held-out samples
        final_dir = output_dir / "final"
        if not (final_dir / "config.json").is_file():
            raise SystemExit(f"--eval_only: {final_dir} holds no trained policy (config.json); train the run first")
        if state.is_main_process:
            if script_args.eval_at_start:
                evaluate_policy(model_path, tokenizer, env, output_dir / "eval_start", **eval_options)
            summary = evaluate_policy(str(final_dir), tokenizer, env, output_dir / "eval", **eval_options)
            print(json.dumps({"eval": summary}, default=str))
        state.wait_for_everyone()
        return
    if script_args.eval_at_start and state.is_main_process and not (output_dir / "eval_start" / "summary.json").exists():
        evaluate_policy(model_path, tokenizer, env, output_dir / "eval_start", **eval_options)
    state.wait_for_everyone()

    # 6. GRPO with pte_rl's multi-turn rollout: exact per-turn token records reach the reward functions.
    # trl is imported here: it takes ~45 s of CPU, which --eval_only does not need.
    from pte_rl.training.trainer import grpo_trainer_class

    GRPOTrainer = grpo_trainer_class(script_args.correct_advantage_floor)

    metrics_callback = LocalMetricsCallback(output_dir, cost_model=cost_model)
    rollout_func = metrics_callback.observe(make_rollout_func(env, max_turns=script_args.max_turns))
    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=env.dataset,
        processing_class=tokenizer,
        rollout_func=rollout_func,
        callbacks=[metrics_callback],
    )
    trainer.train(resume_from_checkpoint=resume)

    # 7. The final policy, then the held-out evaluation that the ablation report reads.
    final_dir = output_dir / "final"
    trainer.save_model(str(final_dir))
    if state.is_main_process:
        tokenizer.save_pretrained(str(final_dir))
        summary = evaluate_policy(str(final_dir), tokenizer, env, output_dir / "eval", **eval_options)
        metrics_callback.log_eval(summary)
        print(json.dumps({"eval": summary}, default=str))
    state.wait_for_everyone()


if __name__ == "__main__":
    main()

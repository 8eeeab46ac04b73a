"""Reward plus pattern computation per GRPO step, as a share of the step's time (target: under 1%).

    .venv/bin/python benchmarks/bench_reward_share.py            # 3 steps of the embedded default

Runs the recipe's GRPO trainer for a few steps with the embedded default's settings
(recipes/configs/default.yaml, read and priced as the recipe reads it: the tiny policy, the ``arith``
environment, pte_rl's multi-turn ``rollout_func``, the ``pte`` reward preset, 16 completions per step)
and times, per step:

* the reward functions of the preset (each call timed inside the trainer);
* the per-batch PTE metrics the recipe logs (``LocalMetricsCallback.on_rollout_batch``:
  ``batch_metrics``, which includes every pattern's rate and cost multiplier, plus the sample table);
* ``pte_rl.patterns.pattern_rates`` alone, re-timed on the step's own rollout batch (median of 20);

against the step's wall time (``on_step_begin`` to ``on_step_end``: generation, rewards, backward).
The first step also warms things up; its share is reported but the summary uses the later steps.
Prints the figures and writes ``benchmarks/results/reward_share.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_CONFIG = ROOT / "recipes" / "configs" / "default.yaml"


class Timer:
    """Accumulates seconds per GRPO step (the step index is set by the callback)."""

    def __init__(self) -> None:
        self.step = 0
        self.seconds: dict[int, float] = {}

    def wrap(self, func):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[self.step] = self.seconds.get(self.step, 0.0) + time.perf_counter() - start

        return timed


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--model", help="policy directory (default: build or reuse the embedded tiny policy)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reward_share.json"))
    return parser.parse_args(argv)


@dataclasses.dataclass
class Setup:
    """The embedded default, resolved as the recipe resolves it (config, policy, env, price, rewards)."""

    config: Any  # pte_rl.training.config.RecipeConfig
    training: dict[str, Any]  # GRPOConfig settings of the file
    model_path: str
    env: Any
    cost_model: Any
    reward_funcs: list
    weights: list[float]


def prepare(model: str | None) -> Setup:
    """recipes/configs/default.yaml through the recipe's parser, resolver and preset loader."""
    from pte_rl.pricing.resolve import resolve_pricing
    from pte_rl.rewards import load_preset
    from pte_rl.rollout.env import load_environment
    from pte_rl.tiny.build import build_tiny_policy
    from pte_rl.tiny.config import tiny_config
    from pte_rl.training.config import bind, parse_recipe_args

    args = parse_recipe_args([], DEFAULT_CONFIG)
    config = bind(args)
    if model is None and config.model_name_or_path == "tiny":
        model = str(build_tiny_policy(tiny_config(config.env.name), out=config.tiny_dir))
    model_path = model or config.model_name_or_path
    env = load_environment(config.env.name, **config.env.options)
    # A fixed gamma needs no model config (the default's); otherwise gamma comes from the policy's.
    cost_model, _ = resolve_pricing(config.pricing, None if config.pricing.gamma is not None else model_path)
    reward_funcs, weights, _ = load_preset(config.reward.preset, config.reward.overrides,
                                           cost_model=cost_model, checker=env.check_answer)
    return Setup(config, args.training, model_path, env, cost_model, reward_funcs, weights)


def train_timed(setup: Setup, steps: int, scratch: Path) -> tuple[Any, dict[int, float], dict[int, list],
                                                                   Timer, Timer]:
    """A few GRPO steps of the default with the rewards and the batch metrics timed per step."""
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig

    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.training.tracking import LocalMetricsCallback
    from pte_rl.training.trainer import grpo_trainer_class

    reward_timer, metrics_timer = Timer(), Timer()
    batches: dict[int, list] = {}
    recorder = LocalMetricsCallback(scratch / "metrics", cost_model=setup.cost_model, plots=False)
    timed_batch = metrics_timer.wrap(recorder.on_rollout_batch)

    def captured(trajectories, trainer=None):
        batches.setdefault(metrics_timer.step, []).extend(trajectories)
        return timed_batch(trajectories, trainer)

    recorder.on_rollout_batch = captured
    training_args = GRPOConfig(**{
        **setup.training, "max_steps": steps, "report_to": "none", "output_dir": str(scratch / "run"),
        "save_strategy": "no", "logging_steps": 1, "reward_weights": setup.weights,
    })
    step_times: dict[int, float] = {}

    class StepClock(TrainerCallback):
        def on_step_begin(self, args_, state, control, **kwargs):
            reward_timer.step = metrics_timer.step = state.global_step
            self.start = time.perf_counter()

        def on_step_end(self, args_, state, control, **kwargs):
            step_times[state.global_step - 1] = time.perf_counter() - self.start

    max_turns = setup.config.env.max_turns or setup.env.max_turns
    trainer = grpo_trainer_class(setup.config.correct_advantage_floor)(
        model=setup.model_path, reward_funcs=[reward_timer.wrap(f) for f in setup.reward_funcs],
        args=training_args, train_dataset=setup.env.dataset,
        processing_class=AutoTokenizer.from_pretrained(setup.model_path),
        rollout_func=recorder.observe(make_rollout_func(setup.env, max_turns=max_turns)),
        callbacks=[StepClock(), recorder],
    )
    trainer.train()
    return training_args, step_times, batches, reward_timer, metrics_timer


def step_rows(step_times: dict[int, float], batches: dict[int, list], cost_model: Any,
              reward_timer: Timer, metrics_timer: Timer) -> list[dict]:
    """Per step: its wall time, the rewards' and batch metrics' time, pattern_rates re-timed alone."""
    from pte_rl.patterns import pattern_rates
    from pte_rl.pricing.trajectory import Trajectory

    rows = []
    for step in sorted(step_times):
        trajectories = [Trajectory.from_dict(t) if isinstance(t, dict) else t for t in batches.get(step, [])]
        samples = []
        for _ in range(20):
            start = time.perf_counter()
            pattern_rates(trajectories, cost_model)
            samples.append(time.perf_counter() - start)
        reward_s, metrics_s = reward_timer.seconds.get(step, 0.0), metrics_timer.seconds.get(step, 0.0)
        rows.append({
            "step": step, "step_s": step_times[step], "trajectories": len(trajectories),
            "reward_s": reward_s, "batch_metrics_s": metrics_s, "pattern_rates_s": statistics.median(samples),
            "share": (reward_s + metrics_s) / step_times[step],
        })
    return rows


def summarize(rows: list[dict], model_path: str, training_args: Any) -> dict:
    """The JSON record: the rows, and medians over the steps after the first (the warm-up)."""
    later = rows[1:] or rows
    summary = {
        "model": model_path, "completions_per_step": training_args.per_device_train_batch_size,
        "num_generations": training_args.num_generations,
        "max_completion_length": training_args.max_completion_length,
        "steps": rows,
        "median_step_s": statistics.median(r["step_s"] for r in later),
        "median_reward_plus_metrics_s": statistics.median(r["reward_s"] + r["batch_metrics_s"] for r in later),
        "median_share": statistics.median(r["share"] for r in later),
        "target_share": 0.01,
    }
    summary["meets_target"] = summary["median_share"] < 0.01
    return summary


def main(argv: list[str] | None = None) -> int:
    from pte_rl.pricing.jsonl import write_atomic

    args = parse_cli(argv)
    setup = prepare(args.model)
    scratch = Path(tempfile.mkdtemp(prefix="reward_share_"))
    training_args, step_times, batches, reward_timer, metrics_timer = train_timed(setup, args.steps, scratch)
    rows = step_rows(step_times, batches, setup.cost_model, reward_timer, metrics_timer)
    summary = summarize(rows, setup.model_path, training_args)
    for r in rows:
        print(f"step {r['step']}: {r['step_s']:.2f} s; rewards {r['reward_s'] * 1e3:.2f} ms, batch metrics (incl. "
              f"patterns) {r['batch_metrics_s'] * 1e3:.2f} ms, pattern_rates alone {r['pattern_rates_s'] * 1e3:.2f} ms "
              f"over {r['trajectories']} trajectories -> {100 * r['share']:.3f}% of the step")
    print(f"median share (steps after the first): {100 * summary['median_share']:.3f}% (target < 1%)")
    out = Path(args.out)
    write_atomic(out, [json.dumps(summary, indent=2) + "\n"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reward plus pattern computation per GRPO step, as a share of the step's time (target: under 1%).

    .venv/bin/python benchmarks/bench_reward_share.py            # 3 steps of the embedded default

Runs a real TRL GRPOTrainer for a few steps with the embedded default's settings
(recipes/configs/default.yaml: the tiny policy, the ``arith`` environment, pte_rl's multi-turn
``rollout_func``, the ``pte`` reward preset, 16 completions per step) and times, per step:

* the reward functions of ``load_preset("pte")`` (each call timed inside the trainer);
* the per-batch PTE metrics the recipe logs (``MetricsRecorder.on_rollout_batch``: ``batch_metrics``,
  which includes every pattern's rate and cost multiplier, plus the sample table);
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--model", help="policy directory (default: build or reuse the embedded tiny policy)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reward_share.json"))
    args = parser.parse_args()

    import yaml
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from pte_rl.patterns import pattern_rates
    from pte_rl.pricing.cost import CostModel
    from pte_rl.pricing.jsonl import write_atomic
    from pte_rl.pricing.trajectory import Trajectory
    from pte_rl.rewards import load_preset
    from pte_rl.rollout.env import load_environment
    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.tiny.build import build_tiny_policy
    from pte_rl.tiny.config import TinyConfig
    from pte_rl.training.tracking import MetricsRecorder

    defaults = yaml.safe_load((ROOT / "recipes" / "configs" / "default.yaml").read_text())
    model_path = args.model or str(build_tiny_policy(TinyConfig(env=defaults["env_name"])))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    env = load_environment(defaults["env_name"])
    cost_model = CostModel(gamma=float(defaults["pte_gamma"]))

    reward_timer, metrics_timer = Timer(), Timer()
    reward_funcs, weights, _ = load_preset(defaults["reward_preset"], gamma=cost_model.gamma, checker=env.check_answer)
    reward_funcs = [reward_timer.wrap(f) for f in reward_funcs]

    batches: dict[int, list] = {}

    def capture(step_of, func):
        def captured(trajectories, trainer=None):
            batches.setdefault(step_of.step, []).extend(trajectories)
            return func(trajectories, trainer)

        return captured

    scratch = Path(tempfile.mkdtemp(prefix="reward_share_"))
    recorder = MetricsRecorder(scratch / "metrics", cost_model=cost_model, plots=False)
    recorder.on_rollout_batch = capture(metrics_timer, metrics_timer.wrap(recorder.on_rollout_batch))

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    config = {k: v for k, v in defaults.items() if k in fields}
    config.update(max_steps=args.steps, report_to="none", output_dir=str(scratch / "run"), save_strategy="no",
                  logging_steps=1, reward_weights=weights)
    training_args = GRPOConfig(**config)

    step_times: dict[int, float] = {}

    class StepClock(TrainerCallback):
        def on_step_begin(self, args_, state, control, **kwargs):
            reward_timer.step = metrics_timer.step = state.global_step
            self.start = time.perf_counter()

        def on_step_end(self, args_, state, control, **kwargs):
            step_times[state.global_step - 1] = time.perf_counter() - self.start

    trainer = GRPOTrainer(
        model=model_path, reward_funcs=reward_funcs, args=training_args, train_dataset=env.dataset,
        processing_class=tokenizer, rollout_func=recorder.observe(make_rollout_func(env, max_turns=defaults["max_turns"])),
        callbacks=[StepClock()],
    )
    trainer.train()

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
    later = rows[1:] or rows
    summary = {
        "model": model_path, "completions_per_step": training_args.per_device_train_batch_size,
        "num_generations": training_args.num_generations, "max_completion_length": training_args.max_completion_length,
        "steps": rows,
        "median_step_s": statistics.median(r["step_s"] for r in later),
        "median_reward_plus_metrics_s": statistics.median(r["reward_s"] + r["batch_metrics_s"] for r in later),
        "median_share": statistics.median(r["share"] for r in later),
        "target_share": 0.01,
    }
    summary["meets_target"] = summary["median_share"] < 0.01
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

"""Turn credit's cost per GRPO step, as a share of the step's time (target: under 1%).

    .venv/bin/python benchmarks/bench_credit_overhead.py            # 6 steps of the embedded default, credit: turn

Runs the training recipe (recipes/grpo_pte.py, the embedded default: the tiny policy, ``arith``, the
``pte`` preset, 16 completions per step) with ``--credit turn`` and times, per step, the advantage
adjustment the trainer adds (:mod:`pte_rl.training.credit`: the correctness part of TRL's advantages,
the per-turn attribution of every penalised rollout, the per-token spread, the floor and the
``credit/*`` metrics) against the step's wall time (``on_step_begin`` to ``on_step_end``: generation,
rewards, backward). The first step warms up and is left out of the summary. Prints the figures and
writes ``benchmarks/results/credit/overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "credit" / "overhead.json"))
    args = parser.parse_args()

    import importlib.util

    from transformers import TrainerCallback

    from pte_rl.training import trainer as trainer_module

    spec = importlib.util.spec_from_file_location("grpo_pte_recipe", ROOT / "recipes" / "grpo_pte.py")
    recipe = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = recipe  # its dataclass looks itself up there
    spec.loader.exec_module(recipe)
    adjust_seconds: dict[int, float] = {}
    step_seconds: dict[int, float] = {}
    rows: dict[int, int] = {}
    original = trainer_module.grpo_trainer_class

    class StepClock(TrainerCallback):
        def on_step_begin(self, training_args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, training_args, state, control, **kwargs):
            step_seconds[state.global_step] = time.perf_counter() - self.start

    def timed_class(*class_args, **class_kwargs):
        base = original(*class_args, **class_kwargs)

        class Timed(base):
            def __init__(self, *init_args, **init_kwargs):
                init_kwargs["callbacks"] = [*init_kwargs.get("callbacks", []), StepClock()]
                super().__init__(*init_args, **init_kwargs)

            def adjust_advantages(self, advantages, rewards_per_func, batch):
                start = time.perf_counter()
                adjusted = super().adjust_advantages(advantages, rewards_per_func, batch)
                step = self.state.global_step + 1
                adjust_seconds[step] = adjust_seconds.get(step, 0.0) + time.perf_counter() - start
                rows[step] = advantages.shape[0]
                return adjusted

        return Timed

    trainer_module.grpo_trainer_class = timed_class
    with tempfile.TemporaryDirectory() as out:
        recipe.main(["--credit", "turn", "--max_steps", str(args.steps), "--output_dir", out, "--report_to", "none",
                     "--eval.at_start", "false", "--eval.n", "1", "--eval.samples", "1", "--save_strategy", "no"])
    steps = sorted(s for s in step_seconds if s > 1 and s in adjust_seconds)
    shares = [adjust_seconds[s] / step_seconds[s] for s in steps]
    result = {
        "steps": len(steps), "rows_per_step": rows.get(steps[0]) if steps else None,
        "adjust_ms_median": round(1000 * statistics.median(adjust_seconds[s] for s in steps), 3),
        "step_s_median": round(statistics.median(step_seconds[s] for s in steps), 3),
        "share_median_pct": round(100 * statistics.median(shares), 4),
        "share_max_pct": round(100 * max(shares), 4),
        "target_pct": 1.0,
    }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

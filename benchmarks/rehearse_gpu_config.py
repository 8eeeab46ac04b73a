"""A CPU rehearsal of a GPU config: the recipe, end to end, on a scaled-down random model of the real one.

    .venv/bin/python benchmarks/rehearse_gpu_config.py                          # CPU, the shipped MATH-500 rows
    .venv/bin/python benchmarks/rehearse_gpu_config.py --data-dir ../shared/data   # the whole math500.jsonl
    .venv/bin/python benchmarks/rehearse_gpu_config.py --device cuda [--use-vllm]  # the same on a GPU machine
    .venv/bin/python benchmarks/rehearse_gpu_config.py -- --reward.overrides.pte.options.gate all \\
        --reward.overrides.pte.options.method group_zscore      # recipe arguments after --: an ungated penalty

What runs: ``recipes/grpo_pte.py --config recipes/configs/qwen2.5-1.5b-math-vllm.yaml`` (launched as
the config's header says, with ``accelerate launch``), unchanged, with

* the policy: :func:`pte_rl.studies.scaled_model.scaled_down` of the model directory
  (default ``tests/data/models/qwen2.5-1.5b-instruct``: the real config.json and a tokenizer of the
  real shape), 2 layers, random weights: the real architecture and chat template at CPU speed;
* the price of the *real* model: ``--pricing.gamma`` set to the gamma that
  :func:`pte_rl.pricing.resolve.resolve_pricing` derives from the unscaled config.json on the config's
  hardware profile (left alone, the recipe would price the scaled config, a different model);
* the data: ``math500.jsonl`` from ``--data-dir`` or ``$PTE_RL_DATA_DIR`` where it is there, else the
  8 MATH-500 rows in ``tests/data/rehearsal/math500_rows.jsonl``;
* overrides that only shrink the run: ``--max_steps 2``, a small batch, few generations, a short
  completion budget, a small evaluation; and on ``--device cpu`` the CPU-only ones:
  ``--use_vllm false --bf16 false --use_cpu true --gradient_checkpointing false``. On ``--device cuda``
  bf16 and gradient checkpointing stay as the config has them, ``--use_vllm`` is off unless asked.

It prints and writes (``--json-out``, default ``benchmarks/results/rehearsal/rehearsal_<device>.json``):
seconds per step (TRL's ``step_time``: generation, rewards, loss and backward; and the trainer's
runtime over its steps), tokens per step (TRL's ``num_tokens``), the peak RSS of the recipe's
processes, every logged metric of the 2 steps, the evaluations, both gammas, and how many tool calls
the model made (a random model rarely writes one; the count is what happened, malformed attempts
counted apart). The run directory (``--work-dir``) keeps metrics.jsonl, config.yaml and W&B's
offline run.

No GPU was available where this script was written: the ``cuda`` path is untested, and the results
in ``benchmarks/results/rehearsal/`` are from CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "recipes" / "configs" / "qwen2.5-1.5b-math-vllm.yaml"
MODEL_DIR = ROOT / "tests" / "data" / "models" / "qwen2.5-1.5b-instruct"
ROWS = ROOT / "tests" / "data" / "rehearsal" / "math500_rows.jsonl"
LAUNCH = {"cpu": ROOT / "launch" / "accelerate_cpu.yaml", "cuda": ROOT / "launch" / "accelerate_1gpu.yaml"}
CPU_OVERRIDES = ["--use_vllm", "false", "--bf16", "false", "--use_cpu", "true", "--gradient_checkpointing", "false"]
MALFORMED_CALLS = ("bad_json", "unknown_tool", "bad_arguments")


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--config", default=str(CONFIG), help="the GPU recipe config rehearsed")
    parser.add_argument("--model-dir", default=str(MODEL_DIR), help="the real model's dir (config.json, tokenizer)")
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hidden-size", type=int, default=None, help="default: 16 per attention head")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("PTE_RL_DATA_DIR"),
                        help="a dir holding math500.jsonl (default $PTE_RL_DATA_DIR; else the shipped rows)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4, help="per_device_train_batch_size")
    parser.add_argument("--generations", type=int, default=4, help="num_generations")
    parser.add_argument("--completion-length", type=int, default=96, help="max_completion_length")
    parser.add_argument("--eval-n", type=int, default=1)
    parser.add_argument("--eval-samples", type=int, default=2)
    parser.add_argument("--use-vllm", action="store_true", help="cuda only: generate with vLLM (colocate)")
    parser.add_argument("--work-dir", default=None, help="default: runs/rehearsal-<device>")
    parser.add_argument("--json-out", default=None,
                        help="default: benchmarks/results/rehearsal/rehearsal_<device>.json")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the recipe may run")
    argv = sys.argv[1:] if argv is None else list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.recipe_args = argv[cut + 1:]
    if args.use_vllm and args.device != "cuda":
        parser.error("--use-vllm needs --device cuda")
    return args


def recipe_command(args: argparse.Namespace, model: Path, run_dir: Path, gamma: float) -> list[str]:
    """The launch line: accelerate launch, the recipe, the GPU config, then the overrides."""
    data = Path(args.data_dir) / "math500.jsonl" if args.data_dir else None
    source = ["--env.options.dataset", str(data if data and data.is_file() else ROWS)]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(LAUNCH[args.device]),
               str(ROOT / "recipes" / "grpo_pte.py"), "--config", args.config,
               "--model_name_or_path", str(model), "--output_dir", str(run_dir), *source,
               "--pricing.gamma", repr(gamma), "--max_steps", str(args.steps),
               "--per_device_train_batch_size", str(args.batch), "--num_generations", str(args.generations),
               "--gradient_accumulation_steps", "1", "--max_completion_length", str(args.completion_length),
               "--eval.n", str(args.eval_n), "--eval.samples", str(args.eval_samples), "--seed", str(args.seed)]
    if args.device == "cpu":
        return command + CPU_OVERRIDES + args.recipe_args
    return command + ["--use_cpu", "false", "--use_vllm", "true" if args.use_vllm else "false"] + args.recipe_args


def run_measured(command: list[str], log_path: Path, timeout: float) -> tuple[int, float, float]:
    """(exit status, wall seconds, peak RSS in MiB of the process tree) of ``command``, output to a log."""
    env = dict(os.environ, WANDB_MODE="offline", HF_HUB_OFFLINE="1", TRL_EXPERIMENTAL_SILENCE="1")
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while True:  # wait4: this child's own rusage (its waited-for descendants' peak included)
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.2)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024


def shown(value: Any) -> Any:
    """A path (or a command's words) relative to the repository where it lies inside it."""
    if isinstance(value, list):
        return [shown(word) for word in value]
    text = str(value)
    return text[len(str(ROOT)) + 1:] if text.startswith(str(ROOT) + os.sep) else text


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def step_rows(run_dir: Path) -> tuple[list[dict], dict]:
    """(the per-step metric rows of metrics.jsonl, the trainer's closing row with train_runtime)."""
    rows = read_jsonl(run_dir / "metrics.jsonl")
    steps = [row for row in rows if "step_time" in row]
    closing = next((row for row in rows if "train_runtime" in row), {})
    return steps, closing


def count_calls(records: list[dict]) -> dict[str, int]:
    """Tool calls recorded, and how many were malformed, in sample rows or interchange records.

    A malformed attempt (``<tool_call>`` then no valid JSON, an unknown tool, bad arguments) is recorded
    as a call, named ``invalid`` for bad JSON, with a ``bad_json`` / ``unknown_tool`` / ``bad_arguments``
    event; ``well_formed`` is the rest: calls that reached a tool.
    """
    calls = malformed = 0
    for record in records:
        if "messages" in record:  # the interchange format (evaluations)
            calls += sum(len(m.get("tool_calls") or []) for m in record["messages"] if m.get("role") == "assistant")
            kinds = [event.get("kind") for event in record.get("events") or []]
        else:  # a samples.jsonl row (training)
            calls += int(record.get("tool_calls") or 0)
            kinds = [str(event).split("@")[0] for event in record.get("events") or []]
        malformed += sum(kind in MALFORMED_CALLS for kind in kinds)
    return {"trajectories": len(records), "tool_calls": calls, "malformed": malformed,
            "well_formed": max(calls - malformed, 0)}


def training_calls(steps: list[dict], samples: list[dict], per_step: int) -> dict[str, Any]:
    """Training's tool calls: every trajectory's (the metrics callback's ``tools/calls_per_trajectory``
    times the completions of a step), and the sampled trajectories' of samples.jsonl, malformed apart."""
    sampled = count_calls(samples)
    return {"trajectories": per_step * len(steps),
            "tool_calls": sum(round(row["tools/calls_per_trajectory"] * per_step) for row in steps),
            "sampled": sampled}


def run_notes(model: Path, run_dir: Path, steps: list[dict]) -> list[str]:
    """What a user would trip on, read from the run's files (not assumed)."""
    notes = []
    flat = [row["step"] for row in steps if row.get("frac_reward_zero_std") == 1.0]
    if flat:
        notes.append(f"steps {flat}: every group's rewards were equal (frac_reward_zero_std 1), so the advantages "
                     "and the loss were 0 and the update moved nothing (a random model answers nothing right and "
                     "the PTE penalty is gated on correct rollouts; '-- --reward.overrides.pte.options.gate all "
                     "--reward.overrides.pte.options.method group_zscore' gives the update something to do)")
    idle = [row["step"] for row in steps if row.get("learning_rate") == 0]
    if idle:
        notes.append(f"steps {idle}: learning rate 0 (the config's warmup_steps outlast them)")
    start_dtype = json.loads((model / "config.json").read_text()).get("dtype")
    final_config = run_dir / "final" / "config.json"
    final_dtype = json.loads(final_config.read_text()).get("dtype") if final_config.is_file() else None
    if final_dtype and start_dtype and final_dtype != start_dtype:
        notes.append(f"eval_start loads the policy in its checkpoint dtype ({start_dtype}); the trainer saved "
                     f"final/ in {final_dtype}, so eval/ ran in another precision than eval_start/")
    return notes


def summarise(args: argparse.Namespace, run_dir: Path, model: Path, measured: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's record: timings, tokens, metrics of each step, evaluations, tool calls."""
    import yaml

    steps, closing = step_rows(run_dir)
    tokens = [row["num_tokens"] - (steps[i - 1]["num_tokens"] if i else 0) for i, row in enumerate(steps)]
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    evals = {split: json.loads((run_dir / split / "summary.json").read_text())
             for split in ("eval_start", "eval") if (run_dir / split / "summary.json").is_file()}
    calls = {"train": training_calls(steps, read_jsonl(run_dir / "samples.jsonl"), args.batch),
             **{split: count_calls(read_jsonl(run_dir / split / "trajectories.jsonl")) for split in evals}}
    wandb_runs = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*")) if (run_dir / "wandb").is_dir() \
        else []
    return {
        **measured,
        "steps": len(steps),
        "seconds_per_step": [round(row["step_time"], 3) for row in steps],
        "seconds_per_step_mean": round(sum(r["step_time"] for r in steps) / len(steps), 3) if steps else None,
        "train_runtime_per_step": round(closing["train_runtime"] / len(steps), 3) if steps and closing else None,
        "tokens_per_step": tokens,
        "gamma_in_run": (resolved.get("pricing") or {}).get("gamma"),
        "metrics": steps,
        "evaluations": evals,
        "tool_calls": calls,
        "wandb_offline_runs": wandb_runs,
        "notes": run_notes(model, run_dir, steps),
    }


def rehearse(args: argparse.Namespace) -> dict[str, Any]:
    """Scale the model down, price the real one, run the recipe, read what it wrote."""
    from pte_rl.pricing.resolve import resolve_pricing
    from pte_rl.studies.scaled_model import scaled_down
    from pte_rl.training.config import parse_recipe_args

    work = Path(args.work_dir or ROOT / "runs" / f"rehearsal-{args.device}")
    run_dir = work / "run"
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists: give another --work-dir (the recipe would resume or mix runs)")
    model = scaled_down(args.model_dir, work / "model", num_layers=args.num_layers, hidden_size=args.hidden_size,
                        seed=args.seed)
    pricing = parse_recipe_args([], args.config).config.pricing
    pricing.gamma = None
    real, derivation = resolve_pricing(pricing, Path(args.model_dir) / "config.json")
    scaled, _ = resolve_pricing(pricing, model / "config.json")
    command = recipe_command(args, model, run_dir, real.gamma)
    status, wall, rss = run_measured(command, work / "recipe.log", args.timeout)
    provenance = json.loads((model / "scaled_down.json").read_text())
    measured = {
        "device": args.device, "config": shown(args.config), "exit_status": status, "command": shown(command[2:]),
        "wall_seconds": round(wall, 1), "peak_rss_mib": round(rss, 1),
        "model": {"source": shown(args.model_dir), "shape": provenance["shape"],
                  "parameters": provenance["parameters"]},
        "gamma_real": real.gamma, "gamma_scaled": scaled.gamma, "gamma_formula": derivation.get("formula"),
        "hardware": derivation.get("hardware"), "work_dir": shown(work),
    }
    if status != 0:
        tail = (work / "recipe.log").read_text(errors="replace")[-4000:]
        raise SystemExit(f"the recipe exited with status {status} after {wall:.0f} s; its log ends:\n{tail}")
    return summarise(args, run_dir, model, measured)


def report(result: dict[str, Any]) -> str:
    """The figures as text."""
    calls = result["tool_calls"]
    lines = [
        f"device {result['device']}: {result['steps']} GRPO steps of {result['config']}",
        f"  model: {result['model']['parameters']:,} parameters, shape {result['model']['shape']}",
        f"  gamma of the real model ({result['hardware']}): {result['gamma_real']:.6g} "
        f"[{result['gamma_formula']}]; of the scaled model: {result['gamma_scaled']:.6g}; "
        f"in the run's config.yaml: {result['gamma_in_run']}",
        f"  seconds per step (TRL step_time): {result['seconds_per_step']} mean {result['seconds_per_step_mean']}; "
        f"trainer runtime per step {result['train_runtime_per_step']}",
        f"  tokens per step: {result['tokens_per_step']}; peak RSS {result['peak_rss_mib']} MiB; "
        f"wall {result['wall_seconds']} s (imports, model load, evaluations included)",
    ]
    for row in result["metrics"]:
        lines.append(f"  step {row['step']}: loss {row['loss']:.4g} reward {row['reward']:.4g} "
                     f"accuracy {row['accuracy']:.3g} pte/mean {row['pte/mean']:.1f} "
                     f"tokens/generated_mean {row['tokens/generated_mean']:.1f} turns/mean {row['turns/mean']:.2f}")
    for split, summary in result["evaluations"].items():
        lines.append(f"  {split}: accuracy {summary['accuracy']:.3g} pte_mean {summary['pte_mean']:.1f} "
                     f"over {summary['n']} trajectories")
    train = calls["train"]
    lines.append(f"  tool calls: training {train['tool_calls']} in {train['trajectories']} trajectories (of the "
                 f"{train['sampled']['trajectories']} sampled: {train['sampled']['tool_calls']} calls, "
                 f"{train['sampled']['malformed']} malformed); " + "; ".join(
                     f"{split} {c['tool_calls']} in {c['trajectories']} trajectories ({c['malformed']} malformed)"
                     for split, c in calls.items() if split != "train"))
    lines += [f"  note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_cli(argv)
    result = rehearse(args)
    out = Path(args.json_out or ROOT / "benchmarks" / "results" / "rehearsal" / f"rehearsal_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(report(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

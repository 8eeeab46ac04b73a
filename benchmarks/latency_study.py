"""PTE fidelity on this machine, end to end: calibrate gamma/delta, then the latency study (Table 10).

    .venv/bin/python benchmarks/latency_study.py                 # the embedded tiny policy, CPU
    .venv/bin/python benchmarks/latency_study.py --n 40 --concurrency 1,8   # a quicker look

1. The model: the embedded tiny policy (``pte-rl tiny build``) when it is built, else a randomly
   initialised Qwen2 of the same shape (timing depends on the shapes, not on the weights) in a
   temporary directory; ``--model DIR`` for any other. Prompts are the environments' under the tiny
   policy's chat template when a tokenizer with one is at hand, else synthetic lengths.
2. Calibration on a grid of turn shapes at every concurrency level -> a profile (gamma, delta).
3. The study on >= 100 synthesised trajectories, replayed per turn at every level, correlated with
   PTE (datasheet and calibrated), token counts, tool calls and price ratios.

Writes ``benchmarks/results/latency_study/``: ``profile.json`` (+ ``profile.calibration.json``),
``latency_study.json``, ``table.md`` and the PNG scatter plots; prints the table and the figures.
On a CPU the clock is the process CPU time of one thread (robust to other jobs on the machine;
equal to wall-clock time on an idle one); ``--statistic min`` keeps the cleanest of the repeats.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pte_rl.cli.calibrate import format_fits
from pte_rl.studies.calibrate import calibrate, calibration_record, datasheet_gamma, save_calibration
from pte_rl.studies.latency import ShapeRanges
from pte_rl.studies.latency_report import run_study, write_report
from pte_rl.studies.replay import TransformersEngine

# Study shapes sized for a 2048-position tiny model on a CPU budget of a few minutes.
RANGES = ShapeRanges(extra_context_long=(200, 500), turns_few=(1, 2), turns_many=(4, 6), tool_short=(5, 40),
                     tool_long=(60, 200), decode=(4, 128), max_context=1024)


def resolve_model(model: str | None, scratch: Path) -> tuple[Path, str, str | None]:
    """(model dir, description, tokenizer dir or None)."""
    if model:
        return Path(model), f"given: {model}", model
    try:
        from pte_rl.tiny.config import TinyConfig, is_built, tiny_policy_path

        path = tiny_policy_path(TinyConfig())
        if is_built(path):
            return path, f"embedded tiny policy ({path})", str(path)
    except (ImportError, OSError, ValueError) as exc:  # no tiny policy module or environment file
        print(f"tiny policy unavailable ({exc}); using a random model of its shape", file=sys.stderr)
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from pte_rl.tiny.config import TinyConfig

    shape = TinyConfig()
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                         intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_layers,
                         num_attention_heads=shape.num_heads, num_key_value_heads=shape.num_kv_heads,
                         max_position_embeddings=shape.max_position_embeddings, tie_word_embeddings=True)
    directory = scratch / "tiny-random"
    Qwen2ForCausalLM(config).save_pretrained(directory)
    return directory, "random Qwen2 of the tiny policy's shape (tiny policy not built)", None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the embedded tiny policy)")
    parser.add_argument("--tokenizer", help="tokenizer with a chat template for the environments' prompts")
    parser.add_argument("--env", default="arith,facts")
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--contexts", default="96,320,640,960", help="calibration grid: context lengths")
    parser.add_argument("--decodes", default="4,32,112", help="calibration grid: decode lengths")
    parser.add_argument("--repeats", type=int, default=2, help="timings per calibration shape")
    parser.add_argument("--study-repeats", type=int, default=1, help="timings per study turn")
    parser.add_argument("--statistic", choices=("median", "min"), default="min")
    parser.add_argument("--max-context", type=int, default=RANGES.max_context)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latency_study"))
    args = parser.parse_args()
    levels = [int(v) for v in args.concurrency.split(",")]
    contexts = [int(v) for v in args.contexts.split(",")]
    decodes = [int(v) for v in args.decodes.split(",")]
    out = Path(args.out)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        model, description, tokenizer = resolve_model(args.model, Path(scratch))
        tokenizer = args.tokenizer or tokenizer
        envs = [e for e in args.env.split(",") if e] if tokenizer else []
        print(f"model: {description}\nprompts: {', '.join(envs) or 'synthetic lengths (no chat template at hand)'}")
        engine = TransformersEngine(model)
        print(f"calibrating: contexts {contexts} x decodes {decodes} at concurrency {levels}", flush=True)
        cal = calibrate(engine, model=description, contexts=contexts, decodes=decodes, concurrency=levels,
                        repeats=args.repeats, statistic=args.statistic, seed=args.seed + 1000,
                        log=lambda m: print(f"{m} ({time.perf_counter() - started:.0f} s)", flush=True))
        sheet = datasheet_gamma(model)
        profile_path, record_path = save_calibration(
            calibration_record(cal, "tiny-cpu", datasheet=sheet), out=out / "profile.json")
        calibrated = time.perf_counter() - started
        print(format_fits(cal.fits, sheet), f"\ncalibration: {calibrated:.0f} s -> {profile_path}", flush=True)
        result = run_study(engine, model=str(model), envs=envs, n=args.n, concurrency=levels,
                           repeats=args.study_repeats, statistic=args.statistic, seed=args.seed,
                           profile=str(record_path), tokenizer=tokenizer,
                           ranges=replace(RANGES, max_context=args.max_context),
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    result["model_description"] = description
    result["elapsed_s"]["calibration"] = calibrated
    result["elapsed_s"]["total"] = time.perf_counter() - started
    paths = write_report(result, out)
    print(paths["table"].read_text())
    print(json.dumps({k: v for k, v in result["summary"].items() if k not in ("pearson", "spearman")}, indent=1))
    print(f"total {result['elapsed_s']['total']:.0f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Held-out evaluation of a policy: sample the environment's eval split, price it, write the results.

The training recipe calls :func:`evaluate_policy` on the starting policy (``eval_start/``) and on the
final one (``eval/``); ``pte-rl report`` reads both. Evaluation runs on the environment's held-out
split, never on the training prompts, with the same multi-turn loop as training
(:func:`pte_rl.rollout.loop.run_rollouts`) and sampling (not greedy: with greedy decoding the first token
decides the path, which hides shifts in the policy's mixture of behaviours).

Files written (atomically) in ``out_dir``: ``trajectories.jsonl`` (interchange format) and
``summary.json`` (:func:`pte_rl.training.metrics.eval_summary`: accuracy, PTE mean/median/p90, prefill share,
generated and total tokens, tool calls, turns, every pattern's rate and cost multiplier).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.jsonl import write_atomic, write_trajectories


def evaluate_policy(
    model: str | os.PathLike | Any,
    tokenizer: Any,
    env: Any,
    out_dir: str | os.PathLike,
    *,
    cost_model: CostModel,
    n: int = 100,
    samples: int = 3,
    temperature: float = 0.7,
    max_turns: int | None = None,
    max_completion_length: int = 1024,
    seed: int = 0,
    batch_size: int = 64,
    split: str = "eval",
    patterns: Any = None,
    dtype: str = "float32",
    device: str | None = None,
) -> dict:
    """Roll out ``samples`` episodes on each of the first ``n`` held-out rows; return the summary.

    ``model`` is a local directory (loaded with ``from_pretrained`` in ``dtype`` on ``device``: None picks
    CUDA when there is one) or an already loaded model. The dtype is explicit, as in TRL (float32 unless
    ``model_init_kwargs`` says otherwise; ``"auto"``: the checkpoint's own): a hub checkpoint's
    ``torch_dtype: bfloat16`` would otherwise evaluate the start policy at another precision than the
    float32 weights the trainer saves. The recipe passes the trainer's dtype to both evaluations.
    """
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    from pte_rl.rollout.backends import SamplingConfig, TransformersBackend
    from pte_rl.rollout.loop import RolloutConfig, TaskInfo, run_rollouts
    from pte_rl.training.metrics import eval_summary

    set_seed(seed)
    if isinstance(model, str | os.PathLike):
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            str(model), dtype=dtype if dtype == "auto" else getattr(torch, str(dtype).removeprefix("torch.")))
        model = loaded.to(device)  # transformers' stubs mistype .to
    was_training = model.training
    model.eval()
    rows = env.split(split)
    rows = rows.select(range(min(n, len(rows))))
    episodes = [(row, k) for row in rows for k in range(samples)]
    config = RolloutConfig(
        max_turns=max_turns or env.max_turns, max_completion_length=max_completion_length,
        sampling=SamplingConfig(temperature=temperature),
    )
    backend = TransformersBackend(model, tokenizer)
    metadata = {"env": env.name, "split": split, "temperature": temperature, "seed": seed}
    trajectories, start = [], time.perf_counter()
    for first in range(0, len(episodes), batch_size):
        batch = episodes[first:first + batch_size]
        results = run_rollouts(
            [row["prompt"] for row, _ in batch], backend, tokenizer, env.tools, config,
            check_answer=env.check_answer, tasks=[TaskInfo(row["ground_truth"], row["task_id"]) for row, _ in batch],
            ids=[f"{row['task_id']}/{k}" for row, k in batch], metadata=metadata,
        )
        trajectories += [r.trajectory for r in results]
    if was_training:
        model.train()
    summary = eval_summary(trajectories, cost_model, patterns=patterns)
    summary.update(split=split, samples=samples, temperature=temperature, seconds=round(time.perf_counter() - start, 2))
    out_dir = Path(out_dir)
    write_trajectories(out_dir / "trajectories.jsonl", trajectories)
    write_atomic(out_dir / "summary.json", [json.dumps(summary, indent=1, sort_keys=True)])
    return summary

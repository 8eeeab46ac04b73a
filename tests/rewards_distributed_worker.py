"""One rank of the 2-process group test (run by tests/test_rewards_distributed.py, not by pytest itself).

    accelerate launch --multi_gpu --num_processes 2 tests/rewards_distributed_worker.py OUT_DIR

Each rank holds half of the batch from :func:`batch` (rank r: samples [4r, 4r + 4)), so group "a"
(samples 0-5) is split across the ranks. Every reward function is called on the local half, as TRL
does; the rank writes its rewards and logged metrics to OUT_DIR/rank<r>.json. The launcher sets
RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; on a machine without GPUs the backend is gloo.
"""

from __future__ import annotations

import json
import signal
import sys
from collections import defaultdict
from pathlib import Path

from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
from pte_rl.rewards import (
    CorrectnessReward,
    CostPenalty,
    KimiLengthReward,
    OTCToolReward,
    PTEPenalty,
    normalized_cost,
)
from pte_rl.rewards.distributed import gather_batch, world

GAMMA = 0.01
# (context, decode, calls, correct, task): group a has six rollouts, group b two
ROWS = [
    (100, 20, 1, True, "a"),
    (100, 40, 2, True, "a"),
    (300, 10, 0, False, "a"),
    (100, 80, 3, True, "a"),
    (500, 60, 4, True, "a"),
    (100, 5, 1, False, "a"),
    (50, 10, 0, True, "b"),
    (50, 30, 2, True, "b"),
]


def reward_functions():
    return {
        "correctness": CorrectnessReward(),
        "pte_minmax": PTEPenalty(gamma=GAMMA),
        "pte_rank": PTEPenalty(gamma=GAMMA, method="group_rank"),
        "pte_zscore_all": PTEPenalty(gamma=GAMMA, method="group_zscore", gate="all"),
        "pte_ema": PTEPenalty(gamma=GAMMA, method="log_budget", budget="ema", cap=4.0),
        "tokens_minmax": CostPenalty("generated_tokens"),
        "kimi": KimiLengthReward(),
        "kimi_completion": KimiLengthReward(length="completion_tokens"),  # gathers the columns too
        "otc": OTCToolReward(),
    }


def batch(indices: range | list[int]) -> dict:
    rows = [ROWS[i] for i in indices]
    records = [
        Trajectory([Turn(c, d, tool_calls=[ToolCall("python")] * k)], task_id=t, correct=ok).to_dict()
        for c, d, k, ok, t in rows
    ]
    return {
        "prompts": [[{"role": "user", "content": t}] for *_, t in rows],
        "completions": [[{"role": "assistant", "content": "x"}] for _ in rows],
        "completion_ids": [[0] * d for _, d, *_ in rows],
        "trajectory": records,
        "task_id": [t for *_, t in rows],
    }


def run(indices, out: dict) -> None:
    """Call every reward function twice on ``indices`` (the EMA reference carries over)."""
    functions = reward_functions()
    for step in range(2):
        for name, func in functions.items():
            metrics: dict[str, list[float]] = defaultdict(list)
            rewards = func(**batch(indices), log_metric=lambda key, value, m=metrics: m[key].append(value))
            out[f"{name}/{step}"] = {"rewards": rewards, "metrics": dict(metrics)}


def count_gathers(local: list[int], dist) -> tuple[list[int], dict]:
    """Collective gathers per batch: two reward functions, then the metrics callback's own call with the
    same records (TRL hands the rollout's record objects unchanged to every reward function)."""
    calls = [0]
    real = dist.all_gather_object

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    dist.all_gather_object = counted
    try:
        counts, callback = [], {}
        for _ in range(2):  # two batches: the second (new record objects) gathers again
            before = calls[0]
            inputs = batch(local)
            CorrectnessReward()(**inputs)
            PTEPenalty(gamma=GAMMA)(**inputs)
            merged, offset = gather_batch(inputs["trajectory"])
            counts.append(calls[0] - before)
            callback = {"offset": offset, "tasks": [r["task_id"] for r in merged], "size": len(merged)}
    finally:
        dist.all_gather_object = real
    return counts, callback


WORKER_DEADLINE_S = 270  # a rank never outlives its test, even if the launcher is killed


def main() -> None:
    signal.alarm(WORKER_DEADLINE_S)  # default action of SIGALRM: the process ends
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, size = world()
    assert size == 2, size
    local = list(range(4 * rank, 4 * rank + 4))
    out: dict = {"rank": rank, "world_size": size, "backend": dist.get_backend()}
    run(local, out)
    # the bare helper: gather (cost, correct, group) rows, normalise the whole batch, keep the local slice
    rows = [(ROWS[i][0] + ROWS[i][1], ROWS[i][3], ROWS[i][4]) for i in local]
    merged, offset = gather_batch(rows)
    costs, correct, groups = zip(*merged, strict=True)
    out["normalized_cost"] = normalized_cost(costs, correct, groups, "group_success_minmax")[
        offset : offset + 4
    ]
    out["gathers"], out["callback"] = count_gathers(local, dist)
    Path(sys.argv[1], f"rank{rank}.json").write_text(json.dumps(out))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

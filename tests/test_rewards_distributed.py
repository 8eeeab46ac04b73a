"""The 2-process group test: a GRPO group split across two CPU processes (gloo) is normalised whole.

Launched as ``accelerate launch --multi_gpu --num_processes 2`` (accelerate falls back to gloo on a
machine without GPUs). Rank r holds samples [4r, 4r + 4) of tests/rewards_distributed_worker.py's batch,
so group "a" (samples 0-5) has four rollouts on rank 0 and two on rank 1. Every reward, concatenated
over the ranks, must equal the single-process result on the whole batch, and must differ from what the
ranks would compute on their halves alone (so the test can fail).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import rewards_distributed_worker as worker  # tests/ is on sys.path under pytest, as conftest is

REPO = Path(__file__).resolve().parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    if not ACCELERATE.exists():
        pytest.skip(f"accelerate launcher not found at {ACCELERATE}")
    out = tmp_path_factory.mktemp("dist")
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        str(ACCELERATE),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(REPO / "tests" / "rewards_distributed_worker.py"),
        str(out),
    ]
    result = subprocess.run(
        command, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_processes_over_gloo(ranks):
    assert [r["rank"] for r in ranks] == [0, 1]
    assert {r["world_size"] for r in ranks} == {2} and {r["backend"] for r in ranks} == {"gloo"}


def test_split_groups_are_normalised_whole(ranks):
    single: dict = {}
    worker.run(range(8), single)  # one process, the whole batch: no process group, no gather
    halves: dict = {}
    worker.run(range(4), halves)
    other: dict = {}
    worker.run(range(4, 8), other)
    differs = 0
    for key, expected in single.items():
        got = ranks[0][key]["rewards"] + ranks[1][key]["rewards"]
        assert got == pytest.approx(expected["rewards"], rel=1e-12, abs=1e-12), key
        # batch-wide metrics are identical on both ranks and equal to the single-process ones
        assert ranks[0][key]["metrics"] == ranks[1][key]["metrics"] == pytest.approx(expected["metrics"]), key
        local_only = halves[key]["rewards"] + other[key]["rewards"]
        differs += local_only != pytest.approx(expected["rewards"], rel=1e-9, abs=1e-9)
    assert differs >= 6  # every group statistic changes when the group is cut in two


def test_normalized_cost_of_a_split_group_by_hand(ranks):
    # costs = context + decode; group a's correct rollouts: 120, 140, 180, 560 -> min 120, max 560
    got = ranks[0]["normalized_cost"] + ranks[1]["normalized_cost"]
    span = 560 - 120 + 1e-6
    expected = [0.0, 20 / span, 0.0, 60 / span, 440 / span, 0.0, 0.0, 20 / (20 + 1e-6)]
    assert got == pytest.approx(expected, rel=1e-12)

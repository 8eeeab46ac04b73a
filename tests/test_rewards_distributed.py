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
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import rewards_distributed_worker as worker  # tests/ is on sys.path under pytest, as conftest is

REPO = Path(__file__).resolve().parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"
LAUNCH_TIMEOUT_S = 240  # ~15 s on an idle 2-core machine; generous for a shared one


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
    # A session of its own, ended on any way out (timeout, pytest-timeout, Ctrl-C): SIGTERM makes the
    # launcher stop both ranks; each rank also arms an alarm (WORKER_DEADLINE_S) so none can outlive it.
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2-process run did not finish in {LAUNCH_TIMEOUT_S} s")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert process.returncode == 0, output[-6000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _flat(metrics: dict[str, list[float]]) -> dict[str, float]:
    return {key: value for key, (value,) in metrics.items()}  # one value per call


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
        assert ranks[0][key]["metrics"] == ranks[1][key]["metrics"], key
        assert _flat(ranks[0][key]["metrics"]) == pytest.approx(_flat(expected["metrics"]), rel=1e-12), key
        local_only = halves[key]["rewards"] + other[key]["rewards"]
        differs += local_only != pytest.approx(expected["rewards"], rel=1e-9, abs=1e-9)
    assert differs >= 6  # every group statistic changes when the group is cut in two


def test_normalized_cost_of_a_split_group_by_hand(ranks):
    # costs = context + decode; group a's correct rollouts: 120, 140, 180, 560 -> min 120, max 560
    got = ranks[0]["normalized_cost"] + ranks[1]["normalized_cost"]
    span = 560 - 120 + 1e-6
    expected = [0.0, 20 / span, 0.0, 60 / span, 440 / span, 0.0, 0.0, 20 / (20 + 1e-6)]
    assert got == pytest.approx(expected, rel=1e-12)


def test_one_gather_per_batch_shared_by_rewards_and_callback(ranks):
    # two reward functions plus the metrics callback's call: one all_gather_object per batch (it was
    # one per caller, 3, before gather_batch)
    assert [r["gathers"] for r in ranks] == [[1, 1], [1, 1]]
    tasks = [t for *_, t in worker.ROWS]
    assert [r["callback"] for r in ranks] == [
        {"offset": 0, "tasks": tasks, "size": 8},
        {"offset": 4, "tasks": tasks, "size": 8},
    ]

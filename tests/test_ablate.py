"""pte_rl.studies.ablate / `pte-rl ablate`: the run plan, command lines, skipping, resuming, locking, the sweep file.

End to end with a fake recipe: a small script that takes the real recipe's arguments, writes what a run
directory holds (config.yaml, metrics.jsonl, checkpoint-N, eval/summary.json) and can crash once."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pte_rl.cli import main
from pte_rl.errors import InputError as CLIError
from pte_rl.studies.ablate import RunSpec, _Lock, latest_checkpoint, penalty_weight_key, plan_runs

REPO = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)

FAKE_RECIPE = r'''
"""Stands in for recipes/grpo_pte.py: same arguments, same run-directory layout, no training."""
import argparse, json, sys
from pathlib import Path

parser = argparse.ArgumentParser()
for name in ("--config", "--reward.preset", "--seed", "--output_dir", "--run_name",
             "--resume_from_checkpoint", "--crash_once", "--max_steps", "--eval.n"):
    parser.add_argument(name, dest=name[2:].replace(".", "_"))
parser.add_argument("--reward.overrides.pte.weight", dest="weight", type=float)
args = parser.parse_args()
out = Path(args.output_dir)
out.mkdir(parents=True, exist_ok=True)
with open(out.parent / "calls.jsonl", "a") as log:
    log.write(json.dumps({"run": args.run_name, "argv": sys.argv[1:]}) + "\n")
seed, preset = int(args.seed), args.reward_preset
weight = 0.5 if args.weight is None else args.weight
overrides = {} if args.weight is None else {"pte.weight": args.weight}
(out / "config.yaml").write_text(json.dumps({"reward": {"preset": preset, "overrides": overrides}, "seed": seed,
                                             "run_name": args.run_name, "pricing": {"gamma": 0.01}}))
start = 3 if args.resume_from_checkpoint else 1
if args.resume_from_checkpoint:
    assert Path(args.resume_from_checkpoint) == out / "checkpoint-2", args.resume_from_checkpoint
with open(out / "metrics.jsonl", "a") as metrics:
    for step in range(start, 5):
        metrics.write(json.dumps({"step": step, "pte/mean": 100.0 - step}) + "\n")
        if step == 2:
            (out / "checkpoint-2").mkdir(exist_ok=True)
            (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
            if args.crash_once == args.run_name:
                sys.exit(3)  # killed after its checkpoint
cost = {"correctness": 200.0}.get(preset, 200.0 * (1 - weight)) + seed
(out / "eval").mkdir(exist_ok=True)
(out / "eval" / "summary.json").write_text(json.dumps({"accuracy": 0.9, "pte_mean": cost, "n": 10}))
'''


@pytest.fixture
def fake_recipe(tmp_path) -> Path:
    path = tmp_path / "fake_recipe.py"
    path.write_text(FAKE_RECIPE)
    return path


def calls(out: Path) -> list[dict]:
    path = out / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_plan_runs_is_seed_major_and_weights_only_touch_penalties():
    specs = plan_runs(["pte", "correctness"], [0, 1], [0.5, 0.9], {"pte": "pte.weight"})
    assert [s.name for s in specs] == [
        "pte-w0.5-s0",
        "pte-w0.9-s0",
        "correctness-s0",
        "pte-w0.5-s1",
        "pte-w0.9-s1",
        "correctness-s1",
    ]
    assert specs[1].overrides == ("pte.weight=0.9",) and specs[2].overrides == ()
    assert [s.name for s in plan_runs(["pte"], [3])] == ["pte-s3"]  # no weights: the preset's own
    assert [s.name for s in plan_runs(["pte"], [0], [None, 0.25], {"pte": "pte.weight"})] == [
        "pte-s0",
        "pte-w0.25-s0",
    ]
    assert RunSpec("rewards/custom.yaml", 1).name == "custom-s1"


def test_the_weight_key_is_read_from_the_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("PTE_RL_REWARDS_DIR", str(tmp_path))
    monitor = {"function": "pte", "weight": 0.0, "options": {"gate": "none"}}
    presets = {
        "mine": {
            "rewards": {
                "correctness": {"function": "correctness"},
                "pte": monitor,
                "length": {"function": "kimi_length", "weight": 0.3},
            }
        },
        "plain": {"rewards": {"correctness": {"function": "correctness"}, "pte": monitor}},
        "two": {
            "rewards": {"a": {"function": "pte", "weight": 0.2}, "b": {"function": "otc_tool", "weight": 0.2}}
        },
    }
    for name, data in presets.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    assert penalty_weight_key("mine") == "length.weight"
    assert penalty_weight_key("plain") is None  # the zero-weight PTE monitor is no penalty
    assert penalty_weight_key("mine", {"mine": "x.weight"}) == "x.weight"
    with pytest.raises(CLIError, match="several penalty entries"):
        penalty_weight_key("two")
    with pytest.raises(CLIError, match="--weight-key nonesuch=KEY"):
        penalty_weight_key("nonesuch")


def test_dry_run_prints_the_commands(tmp_path, fake_recipe, capsys):
    out = tmp_path / "ablate"
    (out / "pte-w0.5-s1" / "checkpoint-7").mkdir(parents=True)
    (out / "pte-w0.5-s1" / "checkpoint-7" / "trainer_state.json").write_text("{}")
    (out / "pte-w0.5-s1" / "checkpoint-9").mkdir()  # no trainer_state.json: an unfinished save, not resumable
    (out / "correctness-s0" / "eval").mkdir(parents=True)
    (out / "correctness-s0" / "eval" / "summary.json").write_text("{}")
    argv = [
        "ablate",
        "--presets",
        "pte,correctness",
        "--weights",
        "0.5",
        "--seeds",
        "0,1",
        "--out",
        str(out),
        "--recipe",
        str(fake_recipe),
        "--config",
        "recipes/configs/default.yaml",
        "--weight-key",
        "pte=pte.weight",
        "--dry-run",
        "--",
        "--max_steps",
        "5",
        "--eval.n",
        "7",
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    base = f"{PY} {fake_recipe} --config recipes/configs/default.yaml"
    assert lines == [
        "# pte-w0.5-s0: new",
        (
            f"{base} --reward.preset pte --seed 0 --output_dir {out}/pte-w0.5-s0 --run_name pte-w0.5-s0 "
            "--reward.overrides.pte.weight 0.5 --max_steps 5 --eval.n 7"
        ),
        "# correctness-s0: complete, skipped",
        "# pte-w0.5-s1: resumes",
        (
            f"{base} --reward.preset pte --seed 1 --output_dir {out}/pte-w0.5-s1 --run_name pte-w0.5-s1 "
            "--reward.overrides.pte.weight 0.5 "
            f"--resume_from_checkpoint {out}/pte-w0.5-s1/checkpoint-7 --max_steps 5 --eval.n 7"
        ),
        "# correctness-s1: new",
        (
            f"{base} --reward.preset correctness --seed 1 --output_dir {out}/correctness-s1 "
            "--run_name correctness-s1 --max_steps 5 --eval.n 7"
        ),
    ]
    assert (
        not (out / "ablate.log").exists() and not (out / "pte-w0.5-s0").exists()
    )  # a dry run writes nothing


def test_end_to_end_with_a_crash_and_a_resume(tmp_path, fake_recipe, capsys):
    out = tmp_path / "ablate"
    argv = [
        "ablate",
        "--presets",
        "pte,correctness",
        "--weights",
        "0.25",
        "--seeds",
        "0,1",
        "--out",
        str(out),
        "--recipe",
        str(fake_recipe),
        "--weight-key",
        "pte=pte.weight",
        "--",
        "--crash_once",
        "pte-w0.25-s1",
    ]
    assert main(argv) == 1  # one run failed; the others are complete and reported
    status = json.loads((out / "ablate_status.json").read_text())
    assert {k: v["state"] for k, v in status.items()} == {
        "pte-w0.25-s0": "complete",
        "correctness-s0": "complete",
        "pte-w0.25-s1": "failed",
        "correctness-s1": "complete",
    }
    assert status["pte-w0.25-s1"]["returncode"] == 3
    report = json.loads((out / "report" / "report.json").read_text())
    assert len(report["runs"]) == 3
    assert latest_checkpoint(out / "pte-w0.25-s1") == out / "pte-w0.25-s1" / "checkpoint-2"
    assert "[3/4] pte-w0.25-s1: FAILED (exit status 3)" in (out / "ablate.log").read_text()

    assert main(argv) == 0  # again: three skipped, the crashed one resumed from checkpoint-2
    runs = [c["run"] for c in calls(out)]
    assert runs == ["pte-w0.25-s0", "correctness-s0", "pte-w0.25-s1", "correctness-s1", "pte-w0.25-s1"]
    resumed = calls(out)[-1]["argv"]
    assert resumed[resumed.index("--resume_from_checkpoint") + 1] == str(
        out / "pte-w0.25-s1" / "checkpoint-2"
    )
    steps = [
        json.loads(line)["step"] for line in (out / "pte-w0.25-s1" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]
    report = json.loads((out / "report" / "report.json").read_text())
    groups = {g["group"]: g for g in report["groups"]}
    # PTE of the fake runs: correctness 200 + seed, pte at w = 0.25: 150 + seed.
    assert groups["correctness"]["stats"]["pte_mean"]["mean"] == 200.5
    assert groups["pte [pte.weight=0.25]"]["stats"]["pte_mean"]["mean"] == 150.5
    assert groups["pte [pte.weight=0.25]"]["vs_correctness"]["pte_pct"] == pytest.approx(
        100 * (150.5 / 200.5 - 1)
    )
    assert not list(out.glob("*/.ablate.lock"))
    assert main(argv) == 0 and len(calls(out)) == 5  # all complete: nothing runs


def test_a_locked_run_is_left_to_its_owner(tmp_path, fake_recipe):
    out = tmp_path / "ablate"
    lock = _Lock(out / "pte-s0" / ".ablate.lock")
    assert lock.acquire() is None  # held by this (live) process
    argv = ["ablate", "--presets", "pte", "--seeds", "0", "--out", str(out), "--recipe", str(fake_recipe)]
    assert main(argv) == 1 and calls(out) == []
    assert "being trained by" in (out / "ablate.log").read_text()
    lock.release()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    (out / "pte-s0" / ".ablate.lock").write_text(f"{os.uname().nodename} {dead.stdout.strip()}\n")
    assert main(argv) == 0 and [c["run"] for c in calls(out)] == ["pte-s0"]  # a stale lock is taken over


def test_bad_arguments_exit_2(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["ablate", "--presets", "pte", "--seeds", "zero", "--out", out]) == 2
    assert "--seeds: expected int values" in capsys.readouterr().err
    assert main(["ablate", "--presets", "pte", "--out", out, "--recipe", str(tmp_path / "none.py")]) == 2
    assert "no such recipe script" in capsys.readouterr().err
    assert main(["ablate", "--presets", "pte", "--out", out, "--weight-key", "pte"]) == 2
    capsys.readouterr()


@pytest.mark.parametrize(("extra", "message"), [
    (["--reward_preset", "tokens"], "field 'reward_preset': no longer a key; use 'reward.preset'"),
    (["--eval_n=5"], "field 'eval_n': no longer a key; use 'eval.n'"),
    (["--pricing.gama", "0.1"], "field 'pricing.gama': unknown; pricing has gamma"),
    (["--reward.preset", "tokens"], "--reward.preset is set by the grid of pte-rl ablate itself"),
])
def test_old_or_unknown_recipe_keys_stop_the_ablation_first(tmp_path, fake_recipe, capsys, extra, message):
    out = tmp_path / "o"
    argv = ["ablate", "--presets", "pte", "--seeds", "0", "--out", str(out), "--recipe", str(fake_recipe), "--",
            *extra]
    assert main(argv) == 2
    assert f"command line (after --): {message}" in capsys.readouterr().err
    assert calls(out) == [] and not out.exists()


def test_the_sweep_file_renders_to_valid_ablate_calls(capsys):
    sweep = yaml.safe_load((REPO / "launch" / "sweep_rewards.yaml").read_text())
    assert sweep["method"] == "grid" and (REPO / sweep["program"]).is_file()
    params = sweep["parameters"]
    assert set(params) == {"presets", "weights", "seeds"}
    command = sweep["command"]
    assert command[:3] == ["${env}", "pte-rl", "ablate"] and "${args}" in command
    # The W&B agent renders ${args} as --name=value per parameter (wandb's create_sweep_command_args).
    chosen = {"presets": "pte", "weights": 0.25, "seeds": 1}
    rendered = [f"--{k}={v}" for k, v in chosen.items()]
    argv = (
        command[2 : command.index("${args}")]
        + rendered
        + ["--dry-run"]
        + command[command.index("${args}") + 1 :]
    )
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "# pte-w0.25-s1: new"
    assert "--reward.preset pte --seed 1 --output_dir runs/sweep/pte-w0.25-s1" in printed[1]
    assert printed[1].endswith("--reward.overrides.pte.weight 0.25 --report_to wandb")

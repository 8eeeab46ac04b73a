"""training.metrics and training.tracking: batch metrics by hand, samples, W&B without a key, metrics.jsonl, plots."""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
from pte_rl.training.metrics import table_rows
from pte_rl.training.tracking import (
    LocalMetricsCallback,
    batch_metrics,
    has_wandb_credentials,
    init_wandb_env,
    produced_here,
    sample_table,
    truncate_after,
    wants_wandb,
)

MODEL = CostModel(gamma=0.01)
# Keys batch_metrics produces that tracking.PRODUCED_PREFIXES does not name yet (its owner adds them; this
# list must end empty).
KNOWN_UNCLAIMED_PREFIXES: tuple[str, ...] = ()


def batch() -> list[Trajectory]:
    """PTE (gamma 0.01, evict, paper) worked by hand, turn by turn: prefill C_i + decode 0.01*C_i*D_i.

    A: (100 + 10) + (130 + 6.5) = 246.5   correct      1 python call       generated 15, total 245
    B: (100 + 20)               = 120     correct      no call             generated 20, total 120
    C: (100 + 10) + (200 + 20) + (300 + 90) = 720   incorrect   python x2, search x1   generated 50, total 650
    D: (50 + 0)                 = 50      ungraded     no call             generated 0, total 50
    """
    c_turns = [Turn(100, 10, tool_calls=[ToolCall("python"), ToolCall("search")]),
               Turn(200, 10, tool_calls=[ToolCall("python")]), Turn(300, 30)]
    return [
        Trajectory([Turn(100, 10, tool_calls=[ToolCall("python")]), Turn(130, 5)], id="A", correct=True),
        Trajectory([Turn(100, 20)], id="B", correct=True),
        Trajectory(c_turns, id="C", correct=False),
        Trajectory([Turn(50, 0)], id="D", correct=None),
    ]


@pytest.fixture
def no_patterns(monkeypatch):
    """Batch metrics without pattern keys, whatever pte_rl.patterns finds."""

    from pte_rl import patterns

    monkeypatch.setattr(patterns, "pattern_rates", lambda trajectories, cost_model, **options: {})


def test_batch_metrics_by_hand(no_patterns):
    m = batch_metrics(batch(), MODEL)
    expected = {
        "pte/mean": (246.5 + 120 + 720 + 50) / 4,
        "pte/median": (120 + 246.5) / 2,
        "pte/p90": 246.5 + 0.7 * (720 - 246.5),  # sorted [50, 120, 246.5, 720], position 0.9 * 3 = 2.7
        "pte/prefill_share": (230 + 100 + 600 + 50) / 1136.5,
        "pte/decode_share": (16.5 + 20 + 120 + 0) / 1136.5,
        "pte/first_turn_share": (110 + 120 + 110 + 50) / 1136.5,  # each trajectory's turn 0
        "pte/correct_mean": (246.5 + 120) / 2,
        "pte/incorrect_mean": 720.0,
        "accuracy": 2 / 3,  # D is ungraded: out of the denominator
        "tokens/generated_mean": (15 + 20 + 50 + 0) / 4,
        "tokens/total_mean": (245 + 120 + 650 + 50) / 4,
        "tools/calls_per_trajectory": 4 / 4,
        "tools/calls/python": 3 / 4,
        "tools/calls/search": 1 / 4,
        "turns/mean": 7 / 4,
        # efficiency/*: over the graded A, B, C (D's answer is unknown, so its cost is not counted either):
        # 2 correct, 85 generated tokens, PTE 246.5 + 120 + 720 = 1086.5, 4 tool calls, all completed.
        "efficiency/correct_per_1k_generated": 1000 * 2 / 85,
        "efficiency/correct_per_1m_pte": 1e6 * 2 / 1086.5,
        "efficiency/pte_per_solved": 1086.5 / 2,
        "efficiency/tool_productivity": 2 / 4,
        "efficiency/completion_rate": 1.0,
        "efficiency/accuracy_given_completion": 2 / 3,
        "efficiency/pte_per_rollout": 1086.5 / 3,
        "efficiency/accuracy_at_pte_1000": 2 / 3,  # A and B cost under every default budget; C fails
        "efficiency/accuracy_at_pte_10000": 2 / 3,
        "efficiency/accuracy_at_pte_100000": 2 / 3,
        "efficiency/accuracy_pte_auc": ((1 - 246.5 / 1e5) + (1 - 120 / 1e5)) / 3,  # B_max = 100000
    }
    assert m == pytest.approx(expected, rel=1e-12)
    # The records the rollout hands TRL (Trajectory.to_dict()) give the same numbers.
    assert batch_metrics([t.to_dict() for t in batch()], MODEL) == m


def test_batch_metrics_leaves_undefined_keys_out(no_patterns):
    wrong = [t for t in batch() if t.correct is False]
    m = batch_metrics(wrong, MODEL)
    assert "pte/correct_mean" not in m and m["accuracy"] == 0.0 and m["pte/incorrect_mean"] == 720.0
    ungraded = batch_metrics([batch()[3]], MODEL)
    assert not {"accuracy", "pte/correct_mean", "pte/incorrect_mean"} & ungraded.keys()
    assert "tools/calls/python" not in ungraded and ungraded["tools/calls_per_trajectory"] == 0.0
    assert "efficiency/pte_per_solved" not in m and m["efficiency/correct_per_1m_pte"] == 0.0
    assert "efficiency/tool_productivity" not in batch_metrics([batch()[1]], MODEL)  # no call: undefined, not 0
    assert not [k for k in ungraded if k.startswith("efficiency/")]  # nothing graded: no efficiency at all
    free = batch_metrics([Trajectory([Turn(0, 0)], correct=True)], MODEL)  # PTE 0: shares undefined
    assert "pte/prefill_share" not in free and free["pte/mean"] == 0.0
    assert "efficiency/correct_per_1m_pte" not in free and "efficiency/correct_per_1k_generated" not in free
    assert batch_metrics([], MODEL) == {}


def test_batch_metrics_adds_pattern_rates(monkeypatch):
    seen = {}

    def pattern_rates(trajectories, gamma, **options):
        seen.update(n=len(trajectories), gamma=gamma, options=options)
        return {"patterns/confirmatory_rate": 0.25, "patterns/confirmatory_cost_multiplier": 2.0,
                "patterns/tool_mixing_rate": 0.0, "patterns/tool_mixing_cost_multiplier": float("nan")}

    from pte_rl import patterns

    monkeypatch.setattr(patterns, "pattern_rates", pattern_rates)
    m = batch_metrics(batch(), MODEL, toolsets={"web": ["search"]})
    assert seen == {"n": 4, "gamma": MODEL, "options": {"toolsets": {"web": ["search"]}}}
    assert m["patterns/confirmatory_rate"] == 0.25 and m["patterns/confirmatory_cost_multiplier"] == 2.0
    assert m["patterns/tool_mixing_rate"] == 0.0 and "patterns/tool_mixing_cost_multiplier" not in m  # NaN: left out


def test_batch_metrics_carries_the_real_pattern_rates():
    from pte_rl import patterns

    expected = {k: v for k, v in patterns.pattern_rates(batch(), MODEL).items() if not math.isnan(v)}
    m = batch_metrics(batch(), MODEL)
    assert expected and {k: v for k, v in m.items() if k.startswith("patterns/")} == expected


def test_sample_table_spreads_over_pte_and_breaks_turns_down():
    rows = sample_table(batch(), MODEL, 2)
    assert [r["id"] for r in rows] == ["D", "C"]  # the cheapest and the dearest
    dear = rows[1]
    assert (dear["pte"], dear["prefill_pte"], dear["decode_pte"]) == (720.0, 600.0, 120.0)
    assert [(t["prefill_pte"], t["decode_pte"]) for t in dear["turns"]] == [(100, 10), (200, 20), (300, 90)]
    assert [t["tool_calls"] for t in dear["turns"]] == [["python", "search"], ["python"], []]
    assert dear["correct"] is False and dear["tool_calls"] == 3 and dear["generated_tokens"] == 50
    # PTE order D(50) B(120) A(246.5) C(720); k=3 keeps ranks round(0), round(1.5), round(3) = 0, 2, 3.
    assert [r["id"] for r in sample_table(batch(), MODEL, 3)] == ["D", "A", "C"]
    assert [r["id"] for r in sample_table(batch(), MODEL, 10)] == ["D", "B", "A", "C"]
    assert sample_table(batch(), MODEL, 0) == []
    flat = table_rows(7, rows)
    assert len(flat) == 1 + 3 and flat[1][:7] == [7, 1, "C", None, False, 720.0, 0]


# --- W&B ----------------------------------------------------------------------------------------------


def test_wants_wandb():
    assert wants_wandb("wandb") and wants_wandb(["tensorboard", "wandb"]) and wants_wandb("all")
    assert not wants_wandb("none") and not wants_wandb(["none"]) and not wants_wandb(None)
    assert not wants_wandb([]) and not wants_wandb(["tensorboard"])


@pytest.fixture
def clean_wandb_env(monkeypatch, tmp_path):
    for key in [k for k in os.environ if k.startswith("WANDB_")] + ["NETRC"]:
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_init_wandb_env_goes_offline_without_a_key(clean_wandb_env, tmp_path):
    assert init_wandb_env("none", tmp_path / "run") == "off"
    assert "WANDB_MODE" not in os.environ and "WANDB_DIR" not in os.environ
    assert init_wandb_env(["wandb"], tmp_path / "run") == "offline" and os.environ["WANDB_MODE"] == "offline"
    assert os.environ["WANDB_DIR"] == str((tmp_path / "run").resolve())


def test_init_wandb_env_keeps_keys_and_user_modes(clean_wandb_env, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert has_wandb_credentials() and init_wandb_env("wandb", tmp_path) == "online" and "WANDB_MODE" not in os.environ
    monkeypatch.delenv("WANDB_API_KEY")
    netrc_file = clean_wandb_env / ".netrc"
    netrc_file.write_text("machine api.wandb.ai\n  login user\n  password " + "p" * 40 + "\n")
    netrc_file.chmod(0o600)
    assert has_wandb_credentials() and init_wandb_env("wandb", tmp_path) == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not has_wandb_credentials()  # the key is for another host
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert init_wandb_env("wandb", tmp_path) == "disabled" and os.environ["WANDB_MODE"] == "disabled"


WANDB_SCRIPT = """
import sys
from pte_rl.training.tracking import init_wandb_env
mode = init_wandb_env(["wandb"], sys.argv[1])
import wandb
run = wandb.init(name="no-key")
for step in range(3):
    run.log({"pte/mean": 100.0 - step, "train/global_step": step})
run.finish()
print("MODE", mode)
"""


def keyless_env(tmp_path: Path) -> dict:
    """This environment without W&B settings, a fresh HOME (no key) and matplotlib's font cache kept."""
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(Path(__file__).resolve().parent.parent),
               MPLCONFIGDIR=os.environ.get("MPLCONFIGDIR") or str(Path.home() / ".cache" / "matplotlib"))
    return env


def test_wandb_without_a_key_logs_offline_in_the_output_dir(tmp_path):
    out, env = tmp_path / "run", keyless_env(tmp_path)
    result = subprocess.run([sys.executable, "-c", WANDB_SCRIPT, str(out)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MODE offline" in result.stdout
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, sorted(p.name for p in (out / "wandb").iterdir())
    assert list(runs[0].glob("*.wandb")), "no offline run file"
    assert not (tmp_path / "wandb").exists()  # nothing left in the working directory


# --- the recorder / callback ----------------------------------------------------------------------------


def state(step: int, main: bool = True) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, is_world_process_zero=main)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    assert data.endswith(b"IEND\xaeB`\x82"), f"{path} is truncated"
    return struct.unpack(">II", data[16:24])


def test_recorder_writes_metrics_samples_and_plots(tmp_path, no_patterns):
    recorder = LocalMetricsCallback(tmp_path, cost_model=MODEL, samples_per_log=2)
    recorder.on_train_begin(None, state(0), None)
    recorder.on_rollout_batch(batch())  # no trainer: queued for the next log line
    recorder.on_rollout_batch(batch()[:2])
    recorder.on_log(None, state(1), None, logs={"reward": 0.5, "loss": float("nan")})
    recorder.on_rollout_batch(batch()[2:])
    recorder.on_log(None, state(2), None, logs={"reward": 0.75})
    lines = read_lines(tmp_path / "metrics.jsonl")
    assert [line["step"] for line in lines] == [1, 2]
    assert lines[0]["reward"] == 0.5 and lines[0]["loss"] is None  # NaN is not valid JSON
    # Two batches before the first log: their means, key by key.
    assert lines[0]["pte/mean"] == pytest.approx((284.125 + (246.5 + 120) / 2) / 2)
    assert lines[0]["accuracy"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert lines[1]["pte/mean"] == pytest.approx(385.0) and lines[1]["accuracy"] == 0.0
    samples = read_lines(tmp_path / "samples.jsonl")
    assert [(s["step"], s["id"]) for s in samples] == [(1, "B"), (1, "A"), (2, "D"), (2, "C")]
    recorder.on_save(None, state(2), None)
    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert written == ["accuracy.png", "pte.png", "pte_share.png", "reward.png", "tokens.png", "tools.png"]
    for name in written:
        width, height = png_size(tmp_path / "plots" / name)
        assert width > 100 and height > 100


def test_recorder_hands_metrics_to_the_trainer(tmp_path, no_patterns, caplog):
    logged: list[tuple[str, float]] = []
    trainer = SimpleNamespace(_log_metric=lambda name, value: logged.append((name, value)))
    recorder = LocalMetricsCallback(tmp_path, cost_model=MODEL)
    metrics = recorder.on_rollout_batch([t.to_dict() for t in batch()], trainer)
    assert dict(logged) == metrics and metrics["pte/mean"] == pytest.approx(284.125)
    # The callback is the one producer of its keys: TRL hands trainer._log_metric to the reward functions,
    # and there a pte/mean (say, priced with cache=reuse) is dropped; reward/* keys pass.
    with caplog.at_level(logging.WARNING, logger="pte_rl.rollout.trl_adapter"):
        for _ in range(2):
            trainer._log_metric("pte/mean", 999.0)
            trainer._log_metric("accuracy", 0.0)
        trainer._log_metric("reward/pte_penalty_mean", -0.25)
    assert logged[len(metrics):] == [("reward/pte_penalty_mean", -0.25)]
    assert caplog.text.count("'pte/mean'") == 1 and caplog.text.count("'accuracy'") == 1  # one warning per key
    recorder.on_rollout_batch(batch()[:2], trainer)  # the next batch: the callback still logs, once per key
    assert [v for k, v in logged if k == "pte/mean"] == [284.125, (246.5 + 120) / 2]
    claimed = [k for k in metrics if not k.startswith(KNOWN_UNCLAIMED_PREFIXES)]
    assert all(map(produced_here, claimed)) and not any(map(produced_here, ["reward/a", "rewards/b/mean", "kl"]))
    # A prefix on the allow-list must still be unclaimed: the entry goes once tracking claims it.
    assert not any(produced_here(prefix + "x") for prefix in KNOWN_UNCLAIMED_PREFIXES)
    recorder.on_log(None, state(1), None, logs={"pte/mean": 284.125})
    assert read_lines(tmp_path / "metrics.jsonl") == [{"step": 1, "pte/mean": 284.125}]  # not added twice


def test_only_the_main_process_writes(tmp_path, no_patterns):
    recorder = LocalMetricsCallback(tmp_path, cost_model=MODEL)
    recorder.on_train_begin(None, state(0, main=False), None)
    recorder.on_rollout_batch(batch())
    recorder.on_log(None, state(1, main=False), None, logs={"reward": 1.0})
    recorder.on_save(None, state(1, main=False), None)
    assert list(tmp_path.iterdir()) == []


def test_resume_drops_lines_after_the_checkpoint(tmp_path, caplog):
    metrics = tmp_path / "metrics.jsonl"
    # Steps 1..5, then a line cut by the kill (line 6).
    metrics.write_text("".join(json.dumps({"step": s, "reward": s / 10}) + "\n" for s in range(1, 6)) + '{"step": 6')
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps({"step": s, "id": str(s)}) + "\n" for s in (2, 4)))
    recorder = LocalMetricsCallback(tmp_path, cost_model=MODEL)
    with caplog.at_level(logging.WARNING, logger="pte_rl.training.tracking"):
        recorder.on_train_begin(None, state(3), None)  # resumed from checkpoint-3
    assert f"{metrics}:6: not a JSON object" in caplog.text  # read through pte_rl.pricing.jsonl.read_jsonl
    assert [line["step"] for line in read_lines(metrics)] == [1, 2, 3]
    assert [line["step"] for line in read_lines(tmp_path / "samples.jsonl")] == [2]
    recorder.on_log(None, state(4), None, logs={"reward": 0.9})
    assert [(line["step"], line["reward"]) for line in read_lines(metrics)][-2:] == [(3, 0.3), (4, 0.9)]
    assert truncate_after(metrics, 10) == 0  # nothing to drop: the file is left alone


def test_pattern_plots_and_eval_keys(tmp_path):
    records = [{"step": s, "patterns/confirmatory_rate": 0.5 / s, "patterns/confirmatory_cost_multiplier": 2.0,
                "eval_pte/mean": 3.0, "note": "text"} for s in (1, 2, 3)]
    from pte_rl.training.plots import training_plots

    written = training_plots(records, tmp_path / "plots")
    assert [p.name for p in written] == ["patterns.png"]
    png_size(written[0])
    assert not list((tmp_path / "plots").glob(".*.tmp"))


def test_local_metrics_callback_is_a_trainer_callback(tmp_path, no_patterns):
    from transformers.trainer_callback import CallbackHandler, TrainerCallback, TrainerControl, TrainerState

    assert issubclass(LocalMetricsCallback, TrainerCallback)
    callback = LocalMetricsCallback(tmp_path, cost_model=MODEL)
    handler = CallbackHandler([callback], model=None, processing_class=None, optimizer=None, lr_scheduler=None)
    args = SimpleNamespace(output_dir=str(tmp_path))
    train_state, control = TrainerState(), TrainerControl()
    handler.on_train_begin(args, train_state, control)
    callback.on_rollout_batch(batch())
    train_state.global_step = 1
    handler.on_log(args, train_state, control, {"reward": 0.25})
    handler.on_train_end(args, train_state, control)
    line = read_lines(tmp_path / "metrics.jsonl")[0]
    assert line["step"] == 1 and line["reward"] == 0.25 and line["turns/mean"] == 1.75
    assert (tmp_path / "plots" / "pte.png").is_file()


TRAINER_SCRIPT = """
import sys
from pathlib import Path
out, max_steps, resume = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "resume"
from pte_rl.training.tracking import init_wandb_env
init_wandb_env(["wandb"], out)
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from pte_rl.pricing.cost import CostModel
from pte_rl.training.tracking import LocalMetricsCallback
from pte_rl.pricing.trajectory import Trajectory, Turn

class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(2, 1)
    def forward(self, x, y):
        return {"loss": ((self.w(x).squeeze(-1) - y) ** 2).mean()}

class Feeder(TrainerCallback):  # stands in for the rollout: one batch of trajectories per step
    def __init__(self, recorder):
        self.recorder = recorder
    def on_step_end(self, args, state, control, **kwargs):
        n = state.global_step
        self.recorder.on_rollout_batch([Trajectory([Turn(100, 10 * n)], correct=True),
                                        Trajectory([Turn(100, 10), Turn(200, 5)], correct=False)])

torch.manual_seed(0)
data = [{"x": torch.randn(2), "y": torch.randn(())} for _ in range(64)]
recorder = LocalMetricsCallback(out, cost_model=CostModel(gamma=0.01))
args = TrainingArguments(output_dir=str(out), max_steps=max_steps, logging_steps=1, save_steps=2,
                         per_device_train_batch_size=4, report_to=["wandb"], use_cpu=True, run_name="tiny")
trainer = Trainer(model=Tiny(), args=args, train_dataset=data, callbacks=[Feeder(recorder), recorder])
trainer.train(resume_from_checkpoint=str(out / "checkpoint-2") if resume else None)
"""


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_trainer_run_without_a_key_logs_offline_and_resumes(tmp_path):
    """A real transformers Trainer with report_to=wandb and no key: offline W&B run, metrics.jsonl, plots;
    a resumed run rewrites the steps after its checkpoint instead of repeating them."""
    out, env = tmp_path / "run", keyless_env(tmp_path)

    def train(resume: bool) -> None:
        result = subprocess.run(
            [sys.executable, "-c", TRAINER_SCRIPT, str(out), "4", "resume" if resume else "fresh"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1500, check=False)
        assert result.returncode == 0, result.stderr[-4000:]

    train(resume=False)
    first = read_lines(out / "metrics.jsonl")
    assert [r["step"] for r in first] == [1, 2, 3, 4, 4]  # 4 step logs + the end-of-training summary
    # The rollout batch of step n: PTE (100 + 0.01*100*10n) and (100 + 10) + (200 + 10): mean (420 + 10n) / 2.
    assert [r["pte/mean"] for r in first[:4]] == pytest.approx([(420 + 10 * n) / 2 for n in (1, 2, 3, 4)])
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1
    for name in ("pte.png", "accuracy.png", "tokens.png"):
        png_size(out / "plots" / name)
    train(resume=True)  # as after a kill between steps 2 and 4: checkpoint-2 is the restart point
    again = read_lines(out / "metrics.jsonl")
    assert [r["step"] for r in again] == [1, 2, 3, 4, 4]
    assert again[:2] == first[:2] and [r["pte/mean"] for r in again[2:4]] == [
        r["pte/mean"] for r in first[2:4]
    ]
    assert len(list((out / "wandb").glob("offline-run-*"))) == 2

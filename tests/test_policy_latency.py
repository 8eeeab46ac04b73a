"""pte_rl.studies.policy_latency / `pte-rl latency`: replayed latency of held-out trajectories, by hand.

A fake engine with known costs (a per prefilled token per sequence; c per decode step, shared by the
batch) makes every latency a sum worked out by hand: a turn costs ``a*C + c*D/B`` per sequence.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from pte_rl.cli import main
from pte_rl.pricing.jsonl import write_trajectories
from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
from pte_rl.studies.latency import pearson
from pte_rl.studies.policy_latency import (
    ARCHITECTURES,
    RandomSize,
    load_runs,
    quotas,
    random_model,
    replay_turns,
    run_policy_latency,
    sample,
)
from pte_rl.studies.policy_latency_report import RESULT_FILE, summarise, write_result
from pte_rl.studies.replay import TransformersEngine, TurnTiming
from pte_rl.studies.report import build_report

A, C = 1e-3, 1e-2  # seconds per prefilled token (per sequence), per decode step (per batch)
PNG = b"\x89PNG\r\n\x1a\n"
T975_1 = 12.706  # Student's t, 0.975 quantile, 1 degree of freedom


class FakeEngine:
    name, device, clock, vocab_size, max_positions = "fake", "cpu", "cpu", 100, None

    def __init__(self):
        self.calls: list[tuple[int, int, int]] = []

    def run_turn(self, batch_size, context_tokens, decode_tokens, rng):
        self.calls.append((batch_size, context_tokens, decode_tokens))
        prefill, decode = batch_size * A * context_tokens, C * decode_tokens
        return TurnTiming(prefill + decode, prefill, decode, prefill + decode)


def trajectory(shapes, name: str) -> Trajectory:
    """Turns of (context, decode); every turn but the last calls one tool."""
    turns, messages = [], [{"role": "user", "content": "q"}]
    for index, (context, decode) in enumerate(shapes):
        calls = [ToolCall(name="python", response_tokens=5)] if index < len(shapes) - 1 else []
        turns.append(Turn(context, decode, tool_calls=calls, tool_tokens=5 if calls else 0))
        messages.append({"role": "assistant", "content": "a"})
        messages += [{"role": "tool", "content": "r"} for _ in calls]
    return Trajectory(turns, id=name, task_id=f"task-{name}", correct=True, messages=messages)


def make_run(root, arm: str, seed: int, trajectories=None, *, summary=True):
    run = root / f"{arm}-s{seed}"
    (run / "eval").mkdir(parents=True)
    config = {"reward": {"preset": arm, "overrides": {}}, "seed": seed,
              "pricing": {"gamma": 0.01, "cache": "evict", "attention": "paper", "delta": 0.0}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    if summary:
        (run / "eval" / "summary.json").write_text(json.dumps({"accuracy": 1.0, "pte_mean": 300.0}))
    if trajectories is not None:
        write_trajectories(run / "eval" / "trajectories.jsonl", trajectories)
    return run


# Per (arm, seed): two trajectories' turn shapes. Latency at B=1 (a*C + c*D per turn):
#   correctness s0: 0.2, 0.55   s1: 0.3, 0.4      pte s0: 0.2, 0.15   s1: 0.3, 0.2
SHAPES = {
    ("correctness", 0): [[(100, 10)], [(100, 10), (300, 5)]],
    ("correctness", 1): [[(200, 10)], [(200, 20)]],
    ("pte", 0): [[(100, 10)], [(100, 5)]],
    ("pte", 1): [[(200, 10)], [(100, 10)]],
}


@pytest.fixture
def run_dirs(tmp_path):
    root = tmp_path / "runs"
    for (arm, seed), shapes in SHAPES.items():
        make_run(root, arm, seed, [trajectory(s, f"{arm}{seed}-{k}") for k, s in enumerate(shapes)])
    return root


@pytest.fixture
def result(run_dirs):
    info = {"model": "fake", "config": ARCHITECTURES["qwen2.5-1.5b"]}
    return run_policy_latency(load_runs([run_dirs]), FakeEngine(), info, per_arm=4, concurrency=[2, 1],
                              contexts=[64, 384], decodes=[4, 24], calibration_repeats=1)


def test_latency_is_the_sum_of_turns_divided_by_concurrency():
    engine = FakeEngine()
    trajectories = [trajectory([(100, 10), (250, 4)], "a"), trajectory([(40, 1)], "b")]
    for level in (1, 4):
        times = replay_turns(engine, trajectories, level, seed=3)
        assert times[0][:, 0].sum() == pytest.approx(A * 350 + C * 14 / level, rel=1e-12)
        assert times[1][:, 0].sum() == pytest.approx(A * 40 + C * 1 / level, rel=1e-12)
        assert times[0][:, 1].tolist() == pytest.approx([A * 100, A * 250], rel=1e-12)  # prefill per sequence
        assert times[0][:, 2].tolist() == pytest.approx([C * 10 / level, C * 4 / level], rel=1e-12)
    assert sorted(engine.calls[:3]) == [(1, 40, 1), (1, 100, 10), (1, 250, 4)]  # every turn, its own shape


def test_pearson_by_hand_and_pooled_over_arms():
    # x = 1, 2, 3; y = 1, 2, 4: sum dx dy = 3, sum dx^2 = 2, sum dy^2 = 42/9, r = 3 / sqrt(84/9)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(84 / 9), rel=1e-12)
    records = [{"arm": arm, "seed": 0, "latency_s": {"1": y}, "turn_s": {"1": [[y, y / 2, y / 2]]},
                "pte_run": x, "pte_datasheet": x, "pte_calibrated": {"1": x}, "generated_tokens": 4 - x}
               for arm, x, y in (("a", 1, 1.0), ("b", 2, 2.0), ("b", 3, 4.0))]
    pooled = summarise(records, [1], "a")["pooled"]["1"]
    assert pooled["pte_datasheet"]["pearson"] == pytest.approx(3 / math.sqrt(84 / 9), rel=1e-12)
    assert pooled["generated_tokens"]["pearson"] == pytest.approx(-3 / math.sqrt(84 / 9), rel=1e-12)
    assert pooled["pte_datasheet"]["spearman"] == pytest.approx(1.0)


def test_quotas_and_sample_spread_over_seeds(run_dirs):
    assert quotas([800, 800, 800], 100) == [34, 33, 33] and quotas([10, 800], 100) == [10, 90]
    runs = load_runs([run_dirs])
    picked = sample(runs, 3, seed=5)
    by_arm_seed = [(r.arm, r.seed) for r, _ in picked]
    assert by_arm_seed.count(("pte", 0)) == 2 and by_arm_seed.count(("pte", 1)) == 1
    assert [t.id for _, t in picked] == [t.id for _, t in sample(runs, 3, seed=5)]  # deterministic
    # The same seed's runs in every arm give the same held-out slots.
    slots = {(r.arm, r.seed): sorted(str(t.id).rsplit("-", 1)[-1] for q, t in picked if q is r) for r, _ in picked}
    assert slots[("pte", 0)] == slots[("correctness", 0)] and slots[("pte", 1)] == slots[("correctness", 1)]


def test_per_arm_summary_and_change_by_hand(result):
    pte = result["summary"]["arms"]["pte"]["levels"]
    base = result["summary"]["arms"]["correctness"]["levels"]
    assert pte["1"]["mean_s"] == pytest.approx((0.2 + 0.15 + 0.3 + 0.2) / 4)
    assert pte["1"]["median_s"] == pytest.approx(0.2)
    assert pte["1"]["p90_s"] == pytest.approx(0.2 + 0.7 * 0.1)  # sorted .15 .2 .2 .3, position 2.7
    assert base["1"]["p90_s"] == pytest.approx(0.4 + 0.7 * 0.15)
    assert pte["1"]["prefill_share"] == pytest.approx(A * 500 / 0.85)
    # Paired by seed: s0 0.175 / 0.375, s1 0.25 / 0.35; t interval over the two.
    s0, s1 = 100 * (0.175 / 0.375 - 1), 100 * (0.25 / 0.35 - 1)
    change = pte["1"]["change_pct"]
    assert change["paired"] and change["seeds"] == [0, 1]
    assert change["mean"] == pytest.approx((s0 + s1) / 2)
    assert change["high"] - change["mean"] == pytest.approx(T975_1 * abs(s0 - s1) / 2)
    # B=2: a turn costs a*C + c*D/2 per sequence: s0 0.1375 / 0.3125, s1 0.2 / 0.275.
    assert pte["2"]["change_pct"]["mean"] == pytest.approx((100 * (0.1375 / 0.3125 - 1) + 100 * (0.2 / 0.275 - 1)) / 2)
    by_id = {r["id"]: r for r in result["trajectories"]}
    assert by_id["correctness0-1"]["latency_s"]["1"] == pytest.approx(0.55)
    assert by_id["correctness0-1"]["pte_run"] == pytest.approx(100 + 0.01 * 100 * 10 + 300 + 0.01 * 300 * 5)
    # The fake's cost is exactly a*C + (c/B)*D: the calibrated PTE (gamma 0, delta c/(B a)) is the latency / a.
    assert result["fits"]["2"]["delta"] == pytest.approx(C / (2 * A), rel=1e-6)
    for level in ("1", "2"):
        assert result["summary"]["pooled"][level]["pte_calibrated"]["pearson"] == pytest.approx(1.0, abs=1e-9)


def test_bad_input_exits_2(tmp_path, run_dirs, capsys):
    bare = make_run(tmp_path / "bare", "pte", 0)  # a summary, no trajectories
    assert main(["latency", str(bare), "--out", str(tmp_path / "o")]) == 2
    assert "eval/trajectories.jsonl: missing" in capsys.readouterr().err
    assert main(["latency", str(run_dirs), "--out", str(tmp_path / "o"), "--baseline", "nope"]) == 2
    assert "--baseline nope: no such arm" in capsys.readouterr().err
    assert main(["latency", str(run_dirs), "--out", str(tmp_path / "o"), "--arms", "pte,nope"]) == 2
    assert "--arms: no such arm nope" in capsys.readouterr().err
    broken = make_run(tmp_path / "broken", "pte", 0, [trajectory([(10, 2)], "x"), trajectory([(10, 2)], "y")])
    log = broken / "eval" / "trajectories.jsonl"
    lines = log.read_text().splitlines()
    record = json.loads(lines[1])
    del record["messages"][1]["usage"]["prompt_tokens"]
    log.write_text(lines[0] + "\n" + json.dumps(record) + "\n")
    assert main(["latency", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert "trajectories.jsonl:2: field 'messages[1].usage.prompt_tokens'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_transformers_replay_on_a_tiny_random_model():
    model, config = random_model("qwen2.5-1.5b", RandomSize(layers=1, hidden=48, vocab=128))
    assert config["num_hidden_layers"] == 1 and config["hidden_size"] == 48 and config["vocab_size"] == 128
    engine = TransformersEngine(model)
    trajectories = [trajectory([(12, 3)], "a"), trajectory([(20, 2), (30, 4)], "b"), trajectory([(8, 1)], "c")]
    for level in (1, 2):
        times = replay_turns(engine, trajectories, level)
        assert [t.shape for t in times] == [(1, 3), (2, 3), (1, 3)]
        for turns in times:
            assert (turns[:, 0] > 0).all()
            np.testing.assert_allclose(turns[:, 0], turns[:, 1] + turns[:, 2])  # total = prefill + decode
        assert times[2][0, 2] == 0.0  # one decoded token comes from the prefill: no decode step


def test_cli_end_to_end_and_report_columns(tmp_path, run_dirs, result, capsys):
    # The calibration grid spans 16 to 512 context tokens: at 16 and 32 the per-call overhead hid the
    # prefill cost under load (the fit found none and stopped the run).
    out = tmp_path / "latency"
    code = main(["latency", str(run_dirs), "--out", str(out), "--layers", "1", "--hidden", "48", "--vocab", "128",
                 "--concurrency", "1,2", "--contexts", "16,512", "--decodes", "2,4", "--calibration-repeats", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| pte | 2 | 4 |" in printed and "All arms pooled" in printed
    written = json.loads((out / RESULT_FILE).read_text())
    assert len(written["trajectories"]) == 8 and written["concurrency"] == [1, 2]
    assert (out / "latency_vs_pte.png").read_bytes().startswith(PNG)
    # The report with the hand-computed result: its latency rows and plot; without it, no section.
    write_result(result, tmp_path / "hand", plot=False)
    report = tmp_path / "report"
    summary = build_report([run_dirs], report, latency=tmp_path / "hand")
    text = (report / "report.md").read_text()
    s0, s1 = 100 * (0.175 / 0.375 - 1), 100 * (0.25 / 0.35 - 1)
    assert "## Measured latency" in text
    assert f"| pte | 1 | 4 | 212.5 | 200.0 | 270.0 | {(s0 + s1) / 2:+.2f}% (" in text
    assert "| correctness | 1 | 4 | 362.5 | 350.0 | 505.0 | – |" in text
    assert "plots/latency_vs_pte.png" in summary["plots"]
    assert (report / "plots" / "latency_vs_pte.png").read_bytes().startswith(PNG)
    assert json.loads((report / "report.json").read_text())["latency"]["n_trajectories"] == 8
    build_report([run_dirs], tmp_path / "plain")
    assert "Measured latency" not in (tmp_path / "plain" / "report.md").read_text()
    assert not (tmp_path / "plain" / "plots" / "latency_vs_pte.png").exists()

"""pte_rl.studies.latency and pte_rl.studies.latency_report: correlations, shapes, replay, the study end to end."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from pte_rl.pricing.cost import pte
from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
from pte_rl.studies.calibrate import fit_costs
from pte_rl.studies.latency import (
    ShapeRanges,
    cost_metrics,
    pearson,
    prompt_lengths_from_envs,
    rankdata,
    replay,
    spearman,
    synthesise_trajectories,
)
from pte_rl.studies.replay import TurnTiming

# ------------------------------------------------------------------------- correlations, by hand


def ranks_by_hand(values: list[float]) -> list[float]:
    """Average rank of each value: 1 + (number smaller) + (number equal - 1) / 2."""
    return [1 + sum(w < v for w in values) + (sum(w == v for w in values) - 1) / 2 for v in values]


def test_rankdata_averages_ties():
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=40).tolist()
    assert rankdata(values).tolist() == ranks_by_hand(values)


def test_spearman_of_a_hand_worked_example():
    # d = rank differences (1, -1, 1, -1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_correlations_agree_with_the_standard_library():
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.lognormal(size=50).tolist()
        y = (np.asarray(x) ** 2 + rng.normal(size=50)).tolist()
        y[3] = y[7]  # a tie
        assert pearson(x, y) == pytest.approx(statistics.correlation(x, y), rel=1e-12)
        assert spearman(x, y) == pytest.approx(statistics.correlation(ranks_by_hand(x), ranks_by_hand(y)), rel=1e-12)


def test_pearson_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        pearson([1, 2, 3], [1, 2])


# --------------------------------------------------------------------------------------- shapes


def test_synthesised_trajectories_cover_every_class_and_chain_their_contexts():
    ranges = ShapeRanges(max_context=1200)
    trajectories = synthesise_trajectories(64, {"a": [100, 150], "b": [300]}, seed=4, ranges=ranges)
    shapes = {t.metadata["shape"] for t in trajectories}
    assert len(shapes) == 8
    assert {t.metadata["env"] for t in trajectories} == {"a", "b"}
    for traj in trajectories:
        assert not traj.turns[-1].tool_calls  # the last turn answers
        assert all(t.tool_calls for t in traj.turns[:-1])
        for before, after in zip(traj.turns, traj.turns[1:], strict=False):
            assert after.context_tokens == before.context_tokens + before.decode_tokens + before.tool_tokens
        assert all(t.context_tokens + t.decode_tokens <= 1200 and t.decode_tokens >= 1 for t in traj.turns)
    many = [len(t.turns) for t in trajectories if "many-turns" in t.metadata["shape"]]
    few = [len(t.turns) for t in trajectories if "few-turns" in t.metadata["shape"]]
    assert max(few) <= 2 < np.mean(many)
    again = synthesise_trajectories(64, {"a": [100, 150], "b": [300]}, seed=4, ranges=ranges)
    assert [t.turns for t in again] == [t.turns for t in trajectories]


def test_prompt_lengths_are_the_environment_prompts_under_the_chat_template(tiny_tokenizer_dir):
    from conftest import count_tokens
    from transformers import AutoTokenizer

    from pte_rl.rollout.env import load_environment

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    lengths = prompt_lengths_from_envs(["arith"], tokenizer, limit=5)
    env = load_environment("arith")
    expected = [
        count_tokens(tokenizer.apply_chat_template(row["prompt"], tools=env.tool_schemas(), tokenize=False,
                                                   add_generation_prompt=True))
        for row in env.dataset.select(range(5))
    ]
    assert lengths == {env.name: expected}


# --------------------------------------------------------------------------------------- metrics


def test_cost_metrics_by_hand():
    traj = Trajectory(turns=[
        Turn(context_tokens=100, decode_tokens=20, tool_calls=[ToolCall("t", response_tokens=30)], tool_tokens=38),
        Turn(context_tokens=158, decode_tokens=10),
    ])
    context, decode = np.array([64, 64, 256, 256, 1024, 1024]), np.array([2, 8, 2, 8, 2, 8])
    fit = fit_costs(context, decode, 1e-5 * context + 2e-8 * context * decode + 3e-4 * decode)  # gamma .002, delta 30
    metrics = cost_metrics([traj, traj], datasheet_gamma=0.01, fit=fit)
    assert metrics["pte_datasheet"][0] == pytest.approx(100 + 0.01 * 100 * 20 + 158 + 0.01 * 158 * 10)
    assert metrics["pte_calibrated"][0] == pytest.approx(100 + 0.002 * 100 * 20 + 30 * 20 + 158 + 0.002 * 158 * 10
                                                         + 30 * 10)
    assert metrics["pte_calibrated"][1] == pytest.approx(pte(traj, 0.002, delta=30.0).total)
    assert metrics["generated_tokens"][0] == 30
    assert metrics["total_tokens"][0] == 100 + 20 + 158 + 10
    assert metrics["tool_calls"][0] == 1
    assert metrics["price_1:1.5"][0] == pytest.approx(258 + 1.5 * 30)
    assert metrics["price_1:4"][0] == pytest.approx(258 + 4 * 30)


# ---------------------------------------------------------------------------------------- replay


class ModelEngine:
    """An engine whose batch takes B*(a*C + b*C*D) + w*D (+ 1 s on its first ``spike_first`` calls)."""

    name, device, clock, vocab_size, max_positions = "model", "cpu", "cpu", 100, None

    def __init__(self, a=1e-5, b=2e-8, w=1e-3, spike_first=0):
        self.a, self.b, self.w, self.spike_first, self.calls = a, b, w, spike_first, 0

    def cost(self, batch: int, context: int, decode: int) -> float:
        return batch * (self.a * context + self.b * context * decode) + self.w * decode

    def run_turn(self, batch_size, context_tokens, decode_tokens, rng):
        self.calls += 1
        spike = 1.0 if self.calls <= self.spike_first else 0.0
        total = self.cost(batch_size, context_tokens, decode_tokens) + spike
        return TurnTiming(total, total / 2, total / 2, total)


def test_replay_sums_per_turn_times_per_sequence_and_the_median_drops_spikes():
    trajectories = synthesise_trajectories(6, {"x": [50, 80]}, seed=0, ranges=ShapeRanges(max_context=600))
    turns = sum(len(t.turns) for t in trajectories)
    engine = ModelEngine(spike_first=turns)  # the whole first repeat is 1 s slower per turn
    latency, wall = replay(engine, trajectories, 4, repeats=3, statistic="median")
    expected = [sum(engine.cost(4, t.context_tokens, t.decode_tokens) / 4 for t in traj.turns) for traj in trajectories]
    assert latency.tolist() == pytest.approx(expected, rel=1e-9)
    assert wall.tolist() == pytest.approx(expected, rel=1e-9)
    assert engine.calls == 3 * turns
    low, _ = replay(ModelEngine(spike_first=2 * turns), trajectories, 4, repeats=3, statistic="min")
    assert low.tolist() == pytest.approx(expected, rel=1e-9)  # the minimum keeps the one clean repeat


# ------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from test_calibrate import save_tiny_qwen2

    return save_tiny_qwen2(tmp_path_factory.mktemp("tiny_qwen2"))


SMALL = ShapeRanges(extra_context_long=(20, 40), turns_few=(1, 1), turns_many=(2, 3), tool_short=(2, 6),
                    tool_long=(10, 20), decode=(1, 6), max_context=160, synthetic_prompt=(10, 30))


def test_study_end_to_end_on_a_tiny_model(tiny_model_dir, tmp_path):
    from pte_rl.studies.latency_report import run_study, write_report
    from pte_rl.studies.replay import TransformersEngine

    engine = TransformersEngine(tiny_model_dir)
    result = run_study(engine, model=str(tiny_model_dir), envs=[], n=8, concurrency=[2, 1], repeats=2,
                       statistic="min", contexts=[8, 150], decodes=[1, 8], ranges=SMALL)
    assert result["concurrency"] == [1, 2] and result["n_trajectories"] == 8
    level = result["levels"]["2"]
    assert len(level["latency_s"]) == 8 and all(t > 0 for t in level["latency_s"])
    corr = level["correlations"]["generated_tokens"]
    assert corr["pearson"] == pytest.approx(pearson(level["metrics"]["generated_tokens"], level["latency_s"]))
    assert result["calibration"]["source"] == "this run"
    paths = write_report(result, tmp_path / "out")
    table = paths["table"].read_text()
    assert "| PTE (calibrated gamma + delta) |" in table and "B=2 r" in table
    assert len(paths["plots"]) == len(level["metrics"]) + 1
    assert all(p.stat().st_size > 1000 for p in paths["plots"])
    assert json.loads(paths["json"].read_text())["summary"]["top_concurrency"] == 2


def test_cli_study_with_a_saved_profile_and_its_errors(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from pte_rl.cli import main

    monkeypatch.setenv("PTE_RL_PROFILE_DIR", str(tmp_path / "profiles"))
    assert main(["calibrate", "--model", str(tiny_model_dir), "--contexts", "8,150", "--decodes", "1,8",
                 "--concurrency", "1", "--repeats", "2", "--statistic", "min", "--name", "tiny"]) == 0
    args = ["latency-study", "--model", str(tiny_model_dir), "--env", "none", "--n", "6", "--repeats", "1",
            "--max-context", "120", "--profile", "tiny", "--no-plots", "--out", str(tmp_path / "study")]
    assert main([*args, "--concurrency", "1,2"]) == 2
    assert "no fit at concurrency [2]" in capsys.readouterr().err
    assert main([*args, "--concurrency", "1"]) == 0
    result = json.loads((tmp_path / "study" / "latency_study.json").read_text())
    assert result["calibration"]["source"].endswith("calibrations/tiny.json")
    assert result["n_trajectories"] == 6
    assert main(["latency-study", "--model", str(tiny_model_dir), "--env", "arith", "--n", "6",
                 "--out", str(tmp_path / "x")]) == 2  # the random model directory has no tokenizer
    assert "--tokenizer" in capsys.readouterr().err

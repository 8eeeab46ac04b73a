"""pte_rl.studies.report / `pte-rl report`: fake run directories with known numbers -> the table by hand."""

from __future__ import annotations

import csv
import json
import math
import sys
import types
from pathlib import Path

import pytest
import yaml

from pte_rl.cli import main
from pte_rl.errors import InputError
from pte_rl.pricing.jsonl import write_trajectories
from pte_rl.pricing.trajectory import Trajectory, Turn
from pte_rl.studies.report import _curves, build_report, load_run
from pte_rl.studies.seed_stats import stats

PNG = b"\x89PNG\r\n\x1a\n"


def make_run(
    root: Path,
    name: str,
    preset: str,
    seed: int,
    evaluation: dict | None,
    *,
    overrides: dict | None = None,
    start: dict | None = None,
    steps: list[dict] | None = None,
    trajectories=None,
) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = {  # the shape the recipe saves (pte_rl.training.config), gamma and delta resolved
        "reward": {"preset": preset, "overrides": dict(overrides or {})},
        "seed": seed,
        "run_name": name,
        "pricing": {"gamma": 0.01, "hardware": "h100_pcie", "mode": "paper", "cache": "evict",
                    "attention": "paper", "delta": 0.0},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    if evaluation is not None:
        (run / "eval").mkdir()
        (run / "eval" / "summary.json").write_text(json.dumps(evaluation))
    if trajectories is not None:
        (run / "eval").mkdir(exist_ok=True)
        write_trajectories(run / "eval" / "trajectories.jsonl", trajectories)
    if start is not None:
        (run / "eval_start").mkdir()
        (run / "eval_start" / "summary.json").write_text(json.dumps(start))
    if steps is not None:
        (run / "metrics.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    return run


def summary(accuracy: float, pte_mean: float, rate: float, n: int = 100) -> dict:
    return {
        "accuracy": accuracy,
        "pte_mean": pte_mean,
        "pte_median": pte_mean - 5,
        "generated_tokens_mean": pte_mean / 10,
        "tool_calls_mean": 1.0,
        "patterns/confirmatory_rate": rate,
        "n": n,
    }


def traj(context: int, decode: int, correct: bool) -> Trajectory:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    return Trajectory([Turn(context, decode)], id=f"{context}", correct=correct, messages=messages)


@pytest.fixture
def no_patterns(monkeypatch):
    """Eval summaries recomputed from trajectories carry no pattern keys (whatever pte_rl.patterns finds)."""

    def pattern_rates(trajectories, gamma, **options):
        return {}

    try:
        from pte_rl import patterns
    except ImportError:  # not written yet: stand in for it
        patterns = types.ModuleType("pte_rl.patterns")
        monkeypatch.setitem(sys.modules, "pte_rl.patterns", patterns)
    monkeypatch.setattr(patterns, "pattern_rates", pattern_rates, raising=False)


@pytest.fixture
def runs(tmp_path, no_patterns) -> Path:
    root = tmp_path / "ablate"
    for seed, (acc, cost, rate) in enumerate([(0.90, 200, 0.5), (0.94, 240, 0.3), (0.92, 220, 0.4)]):
        make_run(
            root,
            f"correctness-s{seed}",
            "correctness",
            seed,
            summary(acc, cost, rate),
            steps=[
                {"step": 1, "pte/mean": 200 + 20 * seed},
                {"step": 2, "pte/mean": 210 + 20 * seed},
                {"step": 2, "train_runtime": 9.0},
            ],
        )
    starts = {0: {"accuracy": 0.95, "pte_mean": 160}, 1: {"accuracy": 0.97, "pte_mean": 140}}
    for seed, (acc, cost) in enumerate([(0.91, 100), (0.93, 120), (0.92, 110)]):
        make_run(
            root,
            f"pte-s{seed}",
            "pte",
            seed,
            summary(acc, cost, 0.1),
            start=starts.get(seed),
            steps=[{"step": 1, "pte/mean": 150.0}, {"step": 2, "pte/mean": 100 + seed}],
        )
    # No summary.json: recomputed from the trajectories, PTE (gamma 0.01) 100 + 10 = 110 and 20 + 2 = 22.
    make_run(
        root,
        "pte-w0.9-s0",
        "pte",
        0,
        None,
        overrides={"pte.weight": 0.9},
        trajectories=[traj(100, 10, True), traj(20, 10, False)],
    )
    return root


def test_table_values_by_hand(runs, tmp_path):
    out = tmp_path / "report"
    report = build_report([runs], out)
    groups = {g["group"]: g for g in report["groups"]}
    assert list(groups) == ["correctness", "pte", "pte [pte.weight=0.9]"]  # the baseline first
    base, pte, heavy = groups["correctness"], groups["pte"], groups["pte [pte.weight=0.9]"]
    assert base["seeds"] == [0, 1, 2]
    acc = base["stats"]["accuracy"]
    assert acc["mean"] == pytest.approx(0.92) and acc["std"] == pytest.approx(0.02)  # sqrt((.02² + .02²) / 2)
    assert (acc["min"], acc["max"], acc["n"]) == (0.90, 0.94, 3)
    assert base["stats"]["pte_mean"]["mean"] == pytest.approx(220) and base["stats"]["pte_mean"][
        "std"
    ] == pytest.approx(20)
    assert base["stats"]["patterns/confirmatory_rate"]["std"] == pytest.approx(0.1)
    assert pte["vs_correctness"]["pte_pct"] == pytest.approx(-50.0)  # 110 / 220 - 1
    assert pte["vs_correctness"]["accuracy_pts"] == pytest.approx(0.0, abs=1e-9)
    # vs start: the runs that have one (s0, s1): PTE (100 + 120) / (160 + 140) - 1, accuracy 0.92 - 0.96.
    assert pte["vs_start"]["pte_pct"] == pytest.approx(100 * (220 / 300 - 1))
    assert pte["vs_start"]["accuracy_pts"] == pytest.approx(-4.0)
    assert base["vs_start"] is None
    # Recomputed from eval/trajectories.jsonl: PTE mean (110 + 22) / 2 = 66, accuracy 1/2, one seed.
    assert (
        heavy["stats"]["pte_mean"]["mean"] == pytest.approx(66.0)
        and heavy["stats"]["pte_mean"]["std"] is None
    )
    assert (
        heavy["stats"]["accuracy"]["mean"] == 0.5 and heavy["stats"]["generated_tokens_mean"]["mean"] == 10.0
    )
    assert heavy["vs_correctness"]["pte_pct"] == pytest.approx(-70.0)
    assert heavy["vs_correctness"]["accuracy_pts"] == pytest.approx(-42.0)
    assert heavy["stats"]["patterns/confirmatory_rate"]["n"] == 0  # the trajectories hold no pattern rates

    rows = {row["group"]: row for row in csv.DictReader((out / "report.csv").open())}
    assert (
        float(rows["pte"]["pte_mean_mean"]) == pytest.approx(110) and float(rows["pte"]["pte_mean_std"]) == 10
    )
    assert float(rows["pte"]["pte_change_vs_correctness_pct"]) == pytest.approx(-50)
    assert rows["correctness"]["pte_change_vs_start_pct"] == "" and rows["pte"]["seeds"] == "0;1;2"
    markdown = (out / "report.md").read_text()
    assert "| correctness | 0,1,2 | 0.920 ± 0.020 (0.900–0.940) | 220.0 ± 20.0 (200.0–240.0) |" in markdown
    assert "| pte [pte.weight=0.9] | 0 | 0.500 | 66.0 |" in markdown and "| -70.0% | -42.0 pts |" in markdown
    assert json.loads((out / "report.json").read_text())["baseline"] == "correctness"
    for name in ("pareto.png", "pte_per_step.png", "patterns.png"):
        assert (out / "plots" / name).read_bytes()[:8] == PNG, name
        assert f"(plots/{name})" in markdown
    assert not (out / "plots" / "accuracy_per_step.png").exists()  # no run logged accuracy per step


def test_step_curves_mean_and_std_over_seeds(runs):
    loaded = [load_run(runs / f"correctness-s{s}") for s in range(3)]
    groups = [{"group": "correctness", "runs": [str(r.path) for r in loaded]}]
    (curve,) = _curves(loaded, groups, "pte/mean")
    assert curve["steps"] == [1.0, 2.0]
    assert curve["mean"] == pytest.approx([220.0, 230.0]) and curve["std"] == pytest.approx([20.0, 20.0])


def test_stats_edge_cases():
    assert stats([1.0, float("nan"), 3.0]) == {
        "mean": 2.0,
        "std": math.sqrt(2.0),
        "min": 1.0,
        "max": 3.0,
        "n": 2,
    }
    assert stats([]) == {"mean": None, "std": None, "min": None, "max": None, "n": 0}


def test_cli_writes_the_report_and_skips_old_reports(runs, tmp_path, capsys):
    out = runs / "report"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    assert (
        main(["report", *map(str, sorted(runs.iterdir())), "--out", str(out)]) == 0
    )  # the glob includes report/
    printed = capsys.readouterr().out
    assert "# Ablation report" in printed and "7 runs in 3 groups" in printed
    assert json.loads((out / "report.json").read_text())["runs"][0]["path"].endswith("correctness-s0")


def test_without_the_baseline_the_changes_are_left_out(runs, tmp_path):
    report = build_report([runs / "pte-s0", runs / "pte-s1"], tmp_path / "r")
    assert report["groups"][0]["vs_correctness"] is None
    assert "No `correctness` runs" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda run: (run / "config.yaml").unlink(), "missing config.yaml"),
        (
            lambda run: (run / "eval" / "summary.json").unlink(),
            "missing eval/summary.json and eval/trajectories.jsonl",
        ),
        (lambda run: (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": \n'), "metrics.jsonl:2"),
        (lambda run: (run / "config.yaml").write_text("seed: 0\n"), "field 'reward.preset'"),
        (lambda run: (run / "config.yaml").write_text("reward: {preset: pte}\nseed: zero\n"), "field 'seed'"),
        (lambda run: (run / "config.yaml").write_text("reward: {preset: pte, overrides: [a=1]}\nseed: 0\n"),
         "field 'reward.overrides'"),
    ],
)
def test_bad_run_dirs_exit_2_naming_the_file(runs, tmp_path, capsys, damage, message):
    damage(runs / "pte-s1")
    assert main(["report", str(runs / "pte-s0"), str(runs / "pte-s1"), "--out", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert "pte-s1" in error and message in error
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_recomputing_needs_gamma(tmp_path, capsys):
    run = make_run(tmp_path, "x", "pte", 0, None, trajectories=[traj(10, 1, True)])
    (run / "config.yaml").write_text("reward: {preset: pte}\nseed: 0\npricing: {gamma: null}\n")
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 2
    assert f"{run / 'config.yaml'}: field 'pricing.gamma'" in capsys.readouterr().err


def test_recomputing_prices_with_the_saved_pricing(tmp_path, no_patterns):
    """The run's saved gamma, delta and cache policy, through pte_rl.pricing.resolve."""
    from pte_rl.studies.report import cost_model_from_config

    run = make_run(tmp_path, "x", "pte", 0, None, trajectories=[traj(100, 10, True), traj(20, 10, False)])
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["pricing"].update(delta=1.0, cache="reuse")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    model = cost_model_from_config(config, run / "config.yaml")
    assert (model.gamma, model.delta, model.cache, model.attention) == (0.01, 1.0, "reuse", "paper")
    # One turn each: prefill 100 and 20, decode 0.01 * C * 10 = 10 and 2, delta 1.0 * 10 each: 120 and 32.
    assert load_run(run).eval["pte_mean"] == pytest.approx(76.0)
    config["pricing"]["cache"] = "lru"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match="field 'cache': expected one of evict, reuse, measured"):
        load_run(run)


def test_paired_by_seed_by_hand(runs, tmp_path):
    out = tmp_path / "report"
    report = build_report([runs], out)
    pairs = {(p["group"], p["against"]): p for p in report["paired"]}
    # pte [pte.weight=0.9] shares one seed with the others: no pair; the baseline is always the reference.
    assert list(pairs) == [("pte", "correctness")]
    pair = pairs["pte", "correctness"]
    assert pair["seeds"] == [0, 1, 2]
    # Accuracy differences +1, -1, 0 points: mean 0, std 1, half-width t(0.975, 2) / sqrt(3).
    acc = pair["accuracy_pts"]
    assert acc["mean"] == pytest.approx(0.0, abs=1e-9) and acc["n"] == 3
    assert acc["high"] == pytest.approx(4.303 / math.sqrt(3)) and acc["low"] == pytest.approx(-acc["high"])
    # PTE 100/200, 120/240, 110/220: -50% every seed, so the interval has no width.
    assert (pair["pte_pct"]["mean"], pair["pte_pct"]["low"], pair["pte_pct"]["high"]) == pytest.approx(
        (-50.0, -50.0, -50.0))
    markdown = (out / "report.md").read_text()
    assert "## Paired by seed" in markdown
    assert "| pte | correctness | 0,1,2 | +0.00 pts (-2.48 to +2.48) | -50.00% (-50.00 to -50.00) |" in markdown


def test_paired_needs_two_shared_seeds_and_orders_non_baseline_groups(tmp_path, no_patterns):
    from pte_rl.studies.report import paired
    from pte_rl.studies.seed_stats import t975

    root = tmp_path / "runs"
    for preset, seed, acc in [("tokens", 0, 0.80), ("tokens", 1, 0.90), ("pte", 0, 0.85), ("pte", 1, 0.97),
                              ("pte", 2, 0.99)]:
        make_run(root, f"{preset}-s{seed}", preset, seed, summary(acc, 100 * (seed + 1), 0.0))
    report = build_report([root], tmp_path / "out")
    # No correctness runs: the earlier group (sorted by name) is compared against the later one.
    [pair] = report["paired"]
    assert (pair["group"], pair["against"], pair["seeds"]) == ("pte", "tokens", [0, 1])
    assert pair["accuracy_pts"]["mean"] == pytest.approx(6.0)  # (+5 and +7) / 2
    assert pair["accuracy_pts"]["high"] == pytest.approx(6.0 + 12.706 * math.sqrt(2) / math.sqrt(2))
    pte = [load_run(root / "pte-s2")]
    assert paired(pte, [load_run(root / "tokens-s0")]) is None
    assert t975(4) == 2.776 and t975(40) == pytest.approx(2.021, abs=0.003)
    with pytest.raises(ValueError):
        t975(0)

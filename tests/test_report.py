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
from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.jsonl import write_trajectories
from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
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


# --- solved work per token and the anchor columns (pte_rl.studies.anchors) ---------------------------------


def task_traj(task: str, sample: int, context: int, correct: bool, calls: int = 0) -> Trajectory:
    """One sample of a held-out task, as the recipe's evaluation writes it: one turn decoding 10 tokens, so
    PTE = context + 0.01 * context * 10 = 1.1 * context (gamma 0.01)."""
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    turn = Turn(context, 10, tool_calls=[ToolCall("python") for _ in range(calls)])
    return Trajectory([turn], id=f"{task}/{sample}", task_id=task, correct=correct, messages=messages)


# (task, context of sample 0, correct, context of sample 1, correct) per arm and seed; PTE = 1.1 * context.
ARMS = {
    ("correctness", 0): [("t1", 200, True, 200, True), ("t2", 400, True, 400, True), ("t3", 100, True, 100, False)],
    ("correctness", 1): [("t1", 200, True, 200, True), ("t2", 400, True, 600, False), ("t3", 100, True, 100, True)],
    ("pte", 0): [("t1", 100, True, 100, True), ("t2", 200, True, 200, True), ("t3", 50, True, 50, True)],
    ("pte", 1): [("t1", 100, True, 300, True), ("t2", 200, True, 200, True), ("t3", 50, False, 50, False)],
}


@pytest.fixture
def arms(tmp_path, no_patterns) -> Path:
    """Two arms, two seeds, three held-out tasks of two samples each, eval/trajectories.jsonl and the
    summary.json the recipe writes beside it. Every baseline sample makes one tool call; the pte arm makes
    one in seed 0 (t1's first sample) and none in seed 1."""
    from pte_rl.training.metrics import eval_summary

    root = tmp_path / "arms"
    for (preset, seed), tasks in ARMS.items():
        trajs = []
        for task, c0, ok0, c1, ok1 in tasks:
            calls = (1, 1) if preset == "correctness" else (int(seed == 0 and task == "t1"), 0)
            trajs += [task_traj(task, 0, c0, ok0, calls[0]), task_traj(task, 1, c1, ok1, calls[1])]
        make_run(root, f"{preset}-s{seed}", preset, seed, eval_summary(trajs, CostModel(gamma=0.01)),
                 trajectories=trajs)
    return root


def test_efficiency_columns_at_shared_budgets_by_hand(arms, tmp_path):
    report = build_report([arms], tmp_path / "out")
    # B_max: the 90th percentile of the baseline's 12 held-out PTEs (110 x4, 220 x4, 440 x3, 660): position
    # 0.9 * 11 = 9.9, between two 440s; two significant digits: 440. Budgets 110, 220, 440 for both arms.
    assert report["pte_budgets"] == pytest.approx([110.0, 220.0, 440.0])
    evals = {(r["group"], r["seed"]): r["eval"] for r in report["runs"]}
    base0, pte0 = evals["correctness", 0], evals["pte", 0]
    # correctness s0: PTE 220, 220, 440, 440, 110 (correct), 110 (wrong); pte s0: 110, 110, 220, 220, 55, 55.
    assert [base0[f"efficiency/accuracy_at_pte_{b}"] for b in (110, 220, 440)] == pytest.approx([1 / 6, 3 / 6, 5 / 6])
    assert base0["efficiency/accuracy_pte_auc"] == pytest.approx((0.5 + 0.5 + 0 + 0 + 0.75) / 6)  # 1 - PTE/440
    assert [pte0[f"efficiency/accuracy_at_pte_{b}"] for b in (110, 220, 440)] == pytest.approx([4 / 6, 1, 1])
    assert pte0["efficiency/accuracy_pte_auc"] == pytest.approx(1 - 770 / 6 / 440)
    assert pte0["efficiency/pte_per_solved"] == pytest.approx(770 / 6)  # every sample correct
    assert base0["efficiency/pte_per_solved"] == pytest.approx(1540 / 5)
    assert "efficiency/accuracy_at_pte_1000" not in base0  # the summary's default budgets are replaced
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Solved work per token" in markdown and "| accuracy at PTE 110 |" in markdown
    assert "| area to 440 |" in markdown


def test_anchor_columns_by_hand(arms, tmp_path):
    report = build_report([arms], tmp_path / "out")
    groups = {g["group"]: g for g in report["groups"]}
    anchors = groups["pte"]["anchors_vs_correctness"]
    # Tool calls per rollout: baseline 1 and 1, pte 1/6 and 0: (1/12) / 1 - 1.
    assert anchors["tool_calls_pct"] == pytest.approx(100 * (1 / 12 - 1))
    # Correct per tool call: baseline 5/6 in both seeds; pte 6/1 in s0, none in s1 (no call: left out).
    assert anchors["tool_productivity"] == pytest.approx(6.0)
    assert anchors["tool_productivity_baseline"] == pytest.approx(5 / 6)
    assert anchors["tool_productivity_pct"] == pytest.approx(100 * (6 / (5 / 6) - 1))
    # Tasks both solve: s0 {t1, t2} (the baseline fails t3 once), s1 {t1} (the baseline fails t2, pte t3).
    # Pairs (pte / baseline mean PTE): s0 t1 110 / 220, t2 220 / 440; s1 t1 (110 + 330) / 2 = 220 / 220.
    paired = anchors["paired_pte"]
    assert (paired["seeds"], paired["pairs"], paired["tasks"]) == ([0, 1], 3, 2)
    assert (paired["pte"], paired["against"]) == pytest.approx((550 / 3, 880 / 3))
    assert [(s["seed"], s["tasks"]) for s in paired["per_seed"]] == [(0, 2), (1, 1)]
    assert [s["change_pct"] for s in paired["per_seed"]] == pytest.approx([-50.0, 0.0])
    # Over tasks: t1 330 / 440, t2 220 / 440; pooled 550 / 880 - 1 = -37.5%. A draw of two tasks is -25%
    # (t1 twice, p = 1/4), -37.5% or -50% (t2 twice, p = 1/4): the 2.5th and 97.5th percentiles are -50, -25.
    change = paired["change_pct"]
    assert (change["mean"], change["low"], change["high"], change["n"]) == pytest.approx((-37.5, -50.0, -25.0, 2))
    assert groups["correctness"]["anchors_vs_correctness"]["paired_pte"]["change_pct"]["mean"] == 0.0
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Against correctness, comparable with the anchors" in markdown
    assert "| pte | -91.7% | 6.00 (0.83, +620.0%) | 3 (2) | 183.3 / 293.3 | -37.50% (-50.00 to -25.00) |" in markdown
    rows = {row["group"]: row for row in csv.DictReader((tmp_path / "out" / "report.csv").open())}
    assert float(rows["pte"]["paired_pte_change_vs_correctness_pct"]) == pytest.approx(-37.5)
    assert float(rows["pte"]["paired_pte_change_low_vs_correctness"]) == pytest.approx(-50.0)
    assert float(rows["pte"]["efficiency/pte_per_solved_mean"]) == pytest.approx((770 / 6 + 990 / 4) / 2)
    # The same files give the same report: the bootstrap is seeded.
    again = build_report([arms], tmp_path / "again")
    assert again["groups"][1]["anchors_vs_correctness"]["paired_pte"] == paired


def test_report_budget_given_and_runs_without_trajectories(arms, runs, tmp_path, capsys):
    assert main(["report", str(arms), "--out", str(tmp_path / "out"), "--pte-budget", "1000"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["pte_budgets"] == [250.0, 500.0, 1000.0]
    pte0 = next(r["eval"] for r in report["runs"] if r["group"] == "pte" and r["seed"] == 0)
    assert pte0["efficiency/accuracy_pte_auc"] == pytest.approx(1 - 770 / 6 / 1000)
    assert main(["report", str(arms), "--out", str(tmp_path / "bad"), "--pte-budget", "-5"]) == 2
    assert "--pte-budget -5" in capsys.readouterr().err
    # Summary-only runs (the `runs` fixture): the budgets come from the one run with trajectories (PTE 110
    # and 22: p90 101.2, rounded up to 110); the others have no accuracy at a budget, and no paired PTE.
    report = build_report([runs], tmp_path / "summaries")
    assert report["pte_budgets"] == pytest.approx([27.5, 55.0, 110.0])
    groups = {g["group"]: g for g in report["groups"]}
    assert groups["pte"]["stats"]["efficiency/accuracy_at_pte_110"]["n"] == 0
    assert groups["pte [pte.weight=0.9]"]["stats"]["efficiency/accuracy_at_pte_110"]["mean"] == 0.5
    assert groups["pte"]["anchors_vs_correctness"]["paired_pte"] is None
    assert groups["pte"]["anchors_vs_correctness"]["tool_calls_pct"] == pytest.approx(0.0)


def test_an_archived_run_reads_its_gzipped_trajectories(tmp_path, no_patterns):
    """`gzip eval/trajectories.jsonl` leaves trajectories.jsonl.gz: the run reads the same, priced the
    same; the plain file wins when both are there."""
    import gzip

    plain = make_run(tmp_path, "plain", "pte", 0, None, trajectories=[traj(100, 10, True), traj(20, 10, False)])
    archived = make_run(tmp_path, "archived", "pte", 0, None, trajectories=[traj(100, 10, True), traj(20, 10, False)])
    log = archived / "eval" / "trajectories.jsonl"
    (archived / "eval" / "trajectories.jsonl.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    read, expected = load_run(archived), load_run(plain)
    assert read.eval["pte_mean"] == expected.eval["pte_mean"] == pytest.approx(0.5 * (110 + 22))
    assert [t.id for t in read.eval_trajectories] == [t.id for t in expected.eval_trajectories]
    write_trajectories(log, [traj(30, 10, True)])  # both: the plain one is read
    assert load_run(archived).eval["pte_mean"] == pytest.approx(33.0)

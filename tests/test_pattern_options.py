"""The recipe's `patterns:` section reaches the detectors of the training metrics and the evaluation:
a harness whose code tool is called `python_tool` is seen by family, or not, as configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from pte_rl.patterns.base import PatternConfig
from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.jsonl import read_trajectories
from pte_rl.training.config import RecipeConfigError, bind, parse_recipe_args
from pte_rl.training.metrics import batch_metrics, eval_summary

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "recipes" / "configs" / "default.yaml"
CORPUS = REPO / "tests" / "data" / "foreign" / "python_tool_sections.jsonl"


def _confirming() -> list:
    """pte_rl's own record of the corpus' `pt-confirm`: an answer stated, then `python_tool` called."""
    return [t for t in read_trajectories(CORPUS) if t.id == "pt-confirm"]


def test_the_default_section_is_the_detectors_default():
    config = bind(parse_recipe_args([], DEFAULT_CONFIG))
    assert config.patterns.build() == PatternConfig()


def test_the_section_from_the_command_line():
    args = ["--patterns.compute_tools", "[run_code, calc]", "--patterns.tool_families", "false",
            "--patterns.toolsets", "{web: [google_search, open_url]}"]
    built = bind(parse_recipe_args(args, DEFAULT_CONFIG)).patterns.build()
    assert built.compute_tools == ("run_code", "calc") and built.tool_families is False
    assert built.toolsets == {"google_search": "web", "open_url": "web"}
    with pytest.raises(RecipeConfigError, match="patterns.nope"):
        bind(parse_recipe_args(["--patterns.nope", "1"], DEFAULT_CONFIG))


def test_the_config_decides_what_the_metrics_flag():
    trajs, cost = _confirming(), CostModel(gamma=0.005)
    assert len(trajs) == 1
    by_family = batch_metrics(trajs, cost)  # python_tool is a code tool by its name
    only_listed = batch_metrics(trajs, cost, patterns=PatternConfig(compute_tools=("python",), tool_families=False))
    assert by_family["patterns/confirmatory_rate"] == 1.0
    assert only_listed["patterns/confirmatory_rate"] == 0.0
    summary = eval_summary(trajs, cost, patterns=PatternConfig(compute_tools=("python",), tool_families=False))
    assert summary["patterns/confirmatory_rate"] == 0.0


def _flags(argv: list[str], capsys) -> set[str]:
    import json

    from pte_rl.cli import main

    assert main(["patterns", *argv, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["trajectories"]
    return {flag["pattern"] for record in records if record["id"] == "pt-confirm" for flag in record["flags"]}


def test_no_tool_families_on_the_command_line(capsys):
    assert "confirmatory" in _flags([str(CORPUS)], capsys)
    assert "confirmatory" not in _flags([str(CORPUS), "--no-tool-families", "--compute-tools", "python"], capsys)
    assert "confirmatory" in _flags([str(CORPUS), "--no-tool-families", "--compute-tools", "python_tool"], capsys)


@pytest.mark.parametrize("shape", ["sharegpt", "hermes"])
def test_the_report_reads_other_log_shapes(tmp_path: Path, shape: str):
    """A run whose eval/trajectories.jsonl is a ShareGPT or Hermes log is read (auto-detected; the
    pte_rl-format reader refuses the ShareGPT one) and gives the same PTE as pte_rl's form of it."""
    import shutil

    import yaml

    from pte_rl.pricing.cost import pte
    from pte_rl.pricing.formats import read_log
    from pte_rl.pricing.jsonl import FormatError
    from pte_rl.studies.report import build_report

    source = CORPUS.parent / shape / CORPUS.name
    if shape == "sharegpt":
        with pytest.raises(FormatError):
            read_trajectories(source)
    run = tmp_path / "pte-s0"
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({
        "reward": {"preset": "pte", "overrides": {}}, "seed": 0, "run_name": "pte-s0",
        "pricing": {"gamma": 0.005, "cache": "evict", "attention": "paper", "delta": 0.0}}))
    shutil.copy(source, run / "eval" / "trajectories.jsonl")
    reported = build_report([run], tmp_path / "report")["groups"][0]["stats"]["pte_mean"]["mean"]
    cost = CostModel(gamma=0.005)
    by_hand = [pte(t, cost).total for t in read_log(source)]
    assert reported == pytest.approx(sum(by_hand) / len(by_hand))
    openai = [pte(t, cost).total for t in read_trajectories(CORPUS)]
    assert reported == pytest.approx(sum(openai) / len(openai))

"""Every YAML / JSON config in the repo loads, and names only fields its consumer knows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from script_helpers import load_script

REPO = Path(__file__).resolve().parents[1]
YAML_FILES = sorted(
    p for folder in ("recipes", "pte_rl/rewards/presets", "launch") for p in (REPO / folder).rglob("*.yaml")
)


def _recipe_module():
    return load_script("recipes/grpo_pte.py", "grpo_pte_recipe")


def test_the_repo_has_configs_of_every_kind():
    folders = {p.relative_to(REPO).parts[0] for p in YAML_FILES}
    assert folders == {"recipes", "pte_rl", "launch"}
    assert (REPO / "recipes" / "configs" / "default.yaml") in YAML_FILES


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_parses_to_a_mapping(path: Path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, f"{path}: expected a non-empty mapping"


@pytest.mark.parametrize(
    "path", sorted((REPO / "recipes" / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_recipe_configs_name_only_known_fields(path: Path):
    from trl import GRPOConfig

    known = {f.name for f in dataclasses.fields(_recipe_module().PTEScriptArguments)}
    known |= {f.name for f in dataclasses.fields(GRPOConfig)}
    data = yaml.safe_load(path.read_text())
    unknown = sorted(set(data) - known - {"env"})  # `env` is TrlParser's environment-variable block
    assert not unknown, f"{path.name}: unknown fields {unknown}"
    json.loads(data.get("env_kwargs", "{}"))


def test_the_default_recipe_config_parses_with_trls_parser(tmp_path: Path):
    recipe = _recipe_module()
    script_args, training_args = recipe.parse_args(["--output_dir", str(tmp_path / "run"), "--max_steps", "3"])
    assert script_args.model_name_or_path == "tiny" and script_args.env_name == "arith"
    assert script_args.reward_preset == "pte"
    assert training_args.max_steps == 3 and training_args.use_cpu


def test_eval_only_evaluates_a_finished_run_again(tmp_path: Path):
    """`--eval_only true` rewrites eval/ and eval_start/ with the eval_* settings and trains nothing."""
    import shutil

    from pte_rl.tiny.build import TinyConfig, build_tiny_policy

    toy = TinyConfig(sft_examples=16, tokenizer_examples=16, sft_steps=1, hidden_size=16, num_layers=1, num_heads=2,
                     num_kv_heads=1, intermediate_size=32, vocab_size=320, copy_steps=1, copy_batch_size=2)
    policy = build_tiny_policy(toy, tmp_path / "policy", log=lambda _: None)
    run = tmp_path / "run"
    argv = ["--model_name_or_path", str(policy), "--output_dir", str(run), "--eval_only", "true", "--eval_n", "3",
            "--eval_samples", "2", "--max_completion_length", "48", "--max_turns", "2", "--report_to", "none"]
    recipe = _recipe_module()
    with pytest.raises(SystemExit, match="holds no trained policy"):
        recipe.main(argv)
    shutil.copytree(policy, run / "final")
    recipe.main(argv)
    for part in ("eval", "eval_start"):
        summary = json.loads((run / part / "summary.json").read_text())
        assert summary["n"] == 6 and summary["samples"] == 2 and summary["split"] == "eval"
        assert len((run / part / "trajectories.jsonl").read_text().splitlines()) == 6
    assert not (run / "config.yaml").exists() and not list(run.glob("checkpoint-*"))


@pytest.mark.parametrize("path", sorted((REPO / "rewards").glob("*.yaml")), ids=lambda p: p.name)
def test_every_reward_preset_builds(path: Path):
    from pte_rl.rewards import load_preset

    funcs, weights, resolved = load_preset(path, gamma=0.005, checker="number")
    assert len(funcs) == len(weights) >= 1 and isinstance(resolved, dict)


@pytest.mark.parametrize("path", sorted((REPO / "launch").glob("*.yaml")), ids=lambda p: p.name)
def test_launch_configs_are_accelerate_configs(path: Path):
    data = yaml.safe_load(path.read_text())
    if path.name.startswith("sweep"):
        assert {"method", "parameters"} <= set(data)
        return
    from accelerate.utils import DistributedType

    assert data["distributed_type"] in {t.value for t in DistributedType}
    ds = data.get("deepspeed_config", {}).get("deepspeed_config_file")
    if ds:
        stage = json.loads((REPO / ds).read_text())["zero_optimization"]["stage"]
        assert stage == (3 if "zero3" in ds else 2)

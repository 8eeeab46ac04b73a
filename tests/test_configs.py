"""Every YAML / JSON config in the repo loads, and names only fields its consumer knows."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
YAML_FILES = sorted(
    p for folder in ("recipes", "rewards", "launch") for p in (REPO / folder).rglob("*.yaml")
)


def _recipe_module():
    if "grpo_pte_recipe" in sys.modules:
        return sys.modules["grpo_pte_recipe"]
    spec = importlib.util.spec_from_file_location("grpo_pte_recipe", REPO / "recipes" / "grpo_pte.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_the_repo_has_configs_of_every_kind():
    folders = {p.relative_to(REPO).parts[0] for p in YAML_FILES}
    assert folders == {"recipes", "rewards", "launch"}
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

"""Every YAML config in the repo loads and binds to what it configures; the recipe's config parser."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from script_helpers import load_script

from pte_rl.pricing.cost import CostModel
from pte_rl.training.config import RecipeConfigError, bind, parse_recipe_args

REPO = Path(__file__).resolve().parents[1]
YAML_FILES = sorted(
    p for folder in ("recipes", "pte_rl/rewards/presets", "launch") for p in (REPO / folder).rglob("*.yaml")
)
RECIPE_CONFIGS = sorted((REPO / "recipes" / "configs").glob("*.yaml"))
DEFAULT = REPO / "recipes" / "configs" / "default.yaml"


def _recipe_module():
    return load_script("recipes/grpo_pte.py", "grpo_pte_recipe")


def test_the_repo_has_configs_of_every_kind():
    folders = {p.relative_to(REPO).parts[0] for p in YAML_FILES}
    assert folders == {"recipes", "pte_rl", "launch"}
    assert DEFAULT in YAML_FILES
    # the two embedded-default configs (arith, facts) and the three GPU ones
    assert {p.name for p in RECIPE_CONFIGS} >= {"default.yaml", "facts.yaml"} and len(RECIPE_CONFIGS) == 5


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_parses_to_a_mapping(path: Path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, f"{path}: expected a non-empty mapping"


@pytest.mark.parametrize("path", RECIPE_CONFIGS + sorted((REPO / "launch").glob("*.yaml")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_config_opens_with_a_header(path: Path):
    """What it is, what it needs, how to launch it, how to override a field: before the first key."""
    lines = path.read_text().splitlines()
    header = "\n".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    for part in ("Needs:", "Launch", "Override"):
        assert part in header, f"{path.name}: the header does not say {part!r}"
    data = yaml.safe_load(path.read_text())
    if path.parent.name == "configs" and data["model_name_or_path"] != "tiny":
        # what to download first, in one command: the model and the data the config names
        download = lines[next(i for i, line in enumerate(lines) if line.startswith("# Download first")) + 1]
        assert f"hf download {data['model_name_or_path']}" in download, download
        assert f"load_dataset('{data['env']['options']['dataset']}'" in download, download


# Every recipe config is dry-run against its model's fixture (the policy, env, gamma, reward, GRPOConfig
# and launch it resolves): tests/test_dry_run.py.


def test_the_default_config_gives_the_same_run_as_before():
    """The values of the config before the tree (recipes/configs/default.yaml at the layered commit)."""
    config, training = _recipe_module().parse_args(["--max_steps", "3"])
    assert config.model_name_or_path == "tiny" and config.tiny_dir is None
    assert (config.env.name, config.env.options, config.env.max_turns) == ("arith", {}, 4)
    assert (config.reward.preset, config.reward.overrides) == ("pte", {})
    pricing = config.pricing
    assert (pricing.gamma, pricing.delta, pricing.cache, pricing.attention) == (0.005, None, "evict", "paper")
    assert (config.eval.n, config.eval.samples, config.eval.temperature, config.eval.at_start,
            config.eval.only) == (200, 4, 0.7, True, False)
    assert config.correct_advantage_floor == 0.0
    assert (training.max_steps, training.learning_rate, training.beta, training.top_entropy_quantile) == (
        3, 2e-4, 0.04, 0.2)
    assert (training.num_generations, training.per_device_train_batch_size, training.max_completion_length,
            training.save_steps, training.logging_steps, training.seed) == (8, 16, 768, 20, 5, 0)
    assert training.use_cpu and training.report_to == ["wandb"] and training.output_dir == "runs/default"


def test_dotted_overrides_reach_every_section(tmp_path: Path):
    argv = ["--env.name", "facts", "--env.options.n_cities", "10", "--env.options.n_eval=3", "--env.max_turns", "2",
            "--reward.preset", "tokens", "--reward.overrides.tokens.weight", "0.3", "--pricing.gamma", "0.004",
            "--pricing.cache=reuse", "--eval.n", "7", "--eval.at_start", "false", "--model_name_or_path", "m",
            "--learning_rate", "1e-4", "--report_to", "none", "--resume_from_checkpoint", "true"]
    args = parse_recipe_args(argv, DEFAULT)
    config = bind(args)
    assert (config.env.name, config.env.options, config.env.max_turns) == ("facts", {"n_cities": 10, "n_eval": 3}, 2)
    assert config.reward.preset == "tokens" and config.reward.overrides == {"tokens.weight": 0.3}
    assert (config.pricing.gamma, config.pricing.cache) == (0.004, "reuse")
    assert (config.eval.n, config.eval.at_start, config.model_name_or_path) == (7, False, "m")
    assert args.where("pricing.gamma") == "command line (--pricing.gamma)"
    assert args.where("eval.samples") == f"{DEFAULT}:30"  # the file's own line for what the command line left
    training = _recipe_module().training_arguments(args.training, args.training_argv)
    assert training.learning_rate == 1e-4 and training.report_to == [] and training.resume_from_checkpoint is True


def test_env_options_are_typed_by_load_environment():
    args = parse_recipe_args(["--env.name", "math", "--env.options.dataset", "7", "--env.options.eval_fraction",
                              "1"], DEFAULT)
    assert bind(args).env.options == {"dataset": "7", "eval_fraction": 1.0}
    args = parse_recipe_args(["--env.options.level_weights", "[1, 2, 3, 4]"], DEFAULT)
    assert bind(args).env.options == {"level_weights": (1, 2, 3, 4)}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("seed: 0\nreward_preset: tokens\n", ":2: field 'reward_preset': no longer a key; use 'reward.preset'"),
    ("env_kwargs: '{}'\n", ":1: field 'env_kwargs': no longer a key; use 'env.options'"),
    ("pte_gamma: 0.01\n", ":1: field 'pte_gamma': no longer a key; use 'pricing.gamma'"),
    ("eval:\n  n: 3\n  only_now: true\n", ":3: field 'eval.only_now': unknown; eval has n, samples"),
    ("learnin_rate: 0.1\n", ":1: field 'learnin_rate': unknown; expected a recipe field"),
    ("pricing:\n  gamma: -1\n", ":2: field 'pricing.gamma': expected a finite non-negative number"),
    ("pricing:\n  cache: lru\n", ":2: field 'pricing.cache': expected one of evict, reuse, measured"),
    ("eval:\n  n: many\n", ":2: field 'eval.n': expected int, got 'many'"),
    ("env:\n  name: arith\n  options:\n    n_trian: 5\n", ":4: field 'env.options.n_trian': arith accepts seed"),
    ("reward:\n  preset: nonesuch\n", ":2: field 'reward.preset': nonesuch: field '<name>': no preset of that"),
])
def test_bad_keys_in_a_file_name_its_line_and_field(tmp_path: Path, text: str, message: str):
    path = _write(tmp_path, text)
    with pytest.raises(RecipeConfigError) as info:
        bind(parse_recipe_args(["--config", str(path)], DEFAULT))
    assert str(info.value).startswith(f"{path}{message}")


@pytest.mark.parametrize(("argv", "message"), [
    (["--reward_preset", "tokens"], "command line: --reward_preset is no longer a key; use --reward.preset"),
    (["--eval_n=5"], "command line: --eval_n is no longer a key; use --eval.n"),
    (["--env-arg", "n_eval=5"], "command line: --env-arg is no longer a key; use --env.options.NAME"),
    (["--pricing.gama", "1"], "command line: field 'pricing.gama': unknown; pricing has gamma, hardware"),
    (["--env.options.colour", "red"], "command line (--env.options.colour): field 'env.options.colour': arith "
                                      "accepts seed, n_train"),
    (["--eval.n"], "command line: --eval.n needs a value"),
    (["stray"], "command line: expected --key value, got 'stray'"),
])
def test_bad_keys_on_the_command_line_name_the_key(argv: list[str], message: str):
    with pytest.raises(RecipeConfigError) as info:
        bind(parse_recipe_args(argv, DEFAULT))
    assert str(info.value).startswith(message)


def test_the_recipe_exits_2_on_a_config_error_from_any_directory(tmp_path: Path):
    """The default config is found beside the recipe, not in the current directory."""
    done = subprocess.run([sys.executable, str(REPO / "recipes" / "grpo_pte.py"), "--pte_gamma", "0.01"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "command line: --pte_gamma is no longer a key; use --pricing.gamma" in done.stderr
    done = subprocess.run([sys.executable, str(REPO / "recipes" / "grpo_pte.py"), "--env.options.nope", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "field 'env.options.nope': arith accepts" in done.stderr


def test_eval_only_evaluates_a_finished_run_again(tmp_path: Path):
    """`--eval.only true` rewrites eval/ and eval_start/ with the eval settings and trains nothing."""
    import shutil

    from pte_rl.tiny.build import TinyConfig, build_tiny_policy

    toy = TinyConfig(sft_examples=16, tokenizer_examples=16, sft_steps=1, hidden_size=16, num_layers=1, num_heads=2,
                     num_kv_heads=1, intermediate_size=32, vocab_size=320, copy_steps=1, copy_batch_size=2)
    policy = build_tiny_policy(toy, tmp_path / "policy", log=lambda _: None)
    run = tmp_path / "run"
    argv = ["--model_name_or_path", str(policy), "--output_dir", str(run), "--eval.only", "true", "--eval.n", "3",
            "--eval.samples", "2", "--max_completion_length", "48", "--env.max_turns", "2", "--report_to", "none"]
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


@pytest.mark.parametrize("path", sorted((REPO / "pte_rl" / "rewards" / "presets").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_reward_preset_builds(path: Path):
    from pte_rl.rewards import load_preset

    funcs, weights, resolved = load_preset(path, cost_model=CostModel(gamma=0.005), checker="number")
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


def test_credit_takes_trajectory_or_turn():
    config = bind(parse_recipe_args(["--credit", "turn"], DEFAULT))
    assert config.credit == "turn" and bind(parse_recipe_args([], DEFAULT)).credit == "trajectory"
    with pytest.raises(RecipeConfigError, match=r"command line.*'credit': expected trajectory or turn, got 'token'"):
        bind(parse_recipe_args(["--credit", "token"], DEFAULT))


TINY_CONFIGS = [p for p in RECIPE_CONFIGS if yaml.safe_load(p.read_text())["model_name_or_path"] == "tiny"]


@pytest.mark.parametrize("path", TINY_CONFIGS, ids=lambda p: p.name)
def test_every_scripted_path_fits_the_completion_budget_of_its_config(path: Path):
    """Every behaviour the tiny policy is built on must fit ``max_completion_length`` (tool results
    count, as in TRL): a path cut short by the budget fails whatever the policy does, and is also the
    cheapest path, so an efficiency penalty would teach the policy to take it. Counted with the
    tokenizer the build trains (a function of the settings: no build needed)."""
    from pte_rl.tiny.build import build_tokenizer, renderable
    from pte_rl.tiny.config import tiny_config
    from pte_rl.tiny.data import environment_module, parameter_names

    data = yaml.safe_load(path.read_text())
    config = tiny_config(data["env"]["name"])
    tokenizer = build_tokenizer(config)
    module = environment_module(config.env)
    longest: dict[str, int] = {}
    options = {k: v for k, v in (data["env"].get("options") or {}).items()
               if k in parameter_names(module.scripted_trajectories)}
    for record in module.scripted_trajectories(0, 150, **options):
        messages = renderable(record["messages"])
        prompt = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
        before = tokenizer.apply_chat_template(messages[:prompt], add_generation_prompt=True, tokenize=False)
        completion = tokenizer.apply_chat_template(messages, tokenize=False)[len(before):]
        tokens = len(tokenizer(completion, add_special_tokens=False)["input_ids"])
        key = f"{record.get('kind', '')}/{record['behaviour']}"
        longest[key] = max(longest.get(key, 0), tokens)
    assert len({key.split("/")[1] for key in longest}) >= 3, longest
    over = {key: tokens for key, tokens in longest.items() if tokens > data["max_completion_length"]}
    assert not over, f"{path.name}: max_completion_length {data['max_completion_length']} is too short for {over}"

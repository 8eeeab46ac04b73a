"""`--dry_run true` resolves every recipe config without training or weights, against local model dirs.

Each config's model is matched to its fixture in tests/data/models/ (public config.json, a tokenizer of
its shape, no weights) and its data overridden to tests/data/math/math500.jsonl (8 rows of the public
MATH-500 set), so nothing reaches the hub. The GPU configs keep ``bf16: true`` and ``use_vllm: true``:
on a machine without a GPU the dry run still resolves and lists what would need one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from script_helpers import load_script

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "recipes" / "configs").glob("*.yaml"))
MODELS = REPO / "tests" / "data" / "models"
MATH_ROWS = REPO / "tests" / "data" / "math" / "math500.jsonl"
# Parameter counts published for the Qwen2.5 checkpoints (safetensors totals); the estimate leaves out
# the RMSNorm weights, 2 * L * d + d: 87,552 for the 1.5B model, 204,288 for the 7B one.
PUBLISHED_PARAMS = {"qwen2.5-1.5b-instruct": 1_543_714_304, "qwen2.5-7b-instruct": 7_615_616_512}
NORM_PARAMS = {"qwen2.5-1.5b-instruct": 87_552, "qwen2.5-7b-instruct": 204_288}
# Qwen3-1.7B by hand (no bias; tied embeddings): per layer q + k + v + o = 2048*2048*2 + 2*2048*1024 and
# mlp 3*2048*6144, times 28 layers, plus the 151936 x 2048 embedding.
QWEN3_PARAMS = 28 * (2 * 2048 * 2048 + 2 * 2048 * 1024 + 3 * 2048 * 6144) + 151936 * 2048


def _recipe():
    return load_script("recipes/grpo_pte.py", "grpo_pte_recipe")


def _fixture(model_name: str) -> Path:
    """tests/data/models/<name> for a hub name such as Qwen/Qwen2.5-7B-Instruct."""
    return MODELS / model_name.rsplit("/", 1)[-1].lower()


def _dry_run(argv: list[str], capsys) -> tuple[dict, str]:
    _recipe().main([*argv, "--dry_run", "true"])
    out, err = capsys.readouterr()
    return yaml.safe_load(out), err


def _held_out_ids(path: Path, fraction: float, seed: int = 0) -> set[str]:
    """The documented split, computed here: blake2b-64 of ``seed/task_id`` below ``fraction`` of 2**64."""
    ids = [f"{path.stem}-{line}" for line in range(1, len(path.read_text().splitlines()) + 1)]
    return {i for i in ids if int.from_bytes(hashlib.blake2b(f"{seed}/{i}".encode(), digest_size=8).digest(),
                                             "big") < fraction * 2**64}


def test_every_config_has_a_model_fixture_or_is_tiny():
    for path in CONFIGS:
        model = yaml.safe_load(path.read_text())["model_name_or_path"]
        assert model == "tiny" or (_fixture(model) / "config.json").is_file(), f"{path.name}: no fixture for {model}"


GPU_CONFIGS = [p for p in CONFIGS if yaml.safe_load(p.read_text())["model_name_or_path"] != "tiny"]


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.name)
def test_every_gpu_config_dry_runs_against_its_model_fixture(path: Path, tmp_path: Path, capsys):
    import torch

    data = yaml.safe_load(path.read_text())
    model = _fixture(data["model_name_or_path"])
    out_dir = tmp_path / "run"
    resolved, err = _dry_run(["--config", str(path), "--model_name_or_path", str(model), "--output_dir",
                              str(out_dir), "--env.options.dataset", str(MATH_ROWS)], capsys)
    derived = resolved["derived"]
    assert not out_dir.exists()  # a dry run writes nothing

    shape = json.loads((model / "config.json").read_text())
    policy = derived["policy"]
    assert policy["architecture"] == shape["architectures"][0]
    assert (policy["layers"], policy["hidden_size"], policy["attention_heads"], policy["kv_heads"]) == (
        shape["num_hidden_layers"], shape["hidden_size"], shape["num_attention_heads"], shape["num_key_value_heads"])
    expected = (PUBLISHED_PARAMS[model.name] - NORM_PARAMS[model.name]) if model.name in PUBLISHED_PARAMS \
        else QWEN3_PARAMS
    assert policy["params_estimate"] == expected
    assert policy["tokenizer"]["class"] == "Qwen2Tokenizer" and policy["tokenizer"]["first_prompt_tokens"] > 0

    environment = derived["environment"]
    held = _held_out_ids(MATH_ROWS, data["env"]["options"]["eval_fraction"])
    assert environment["splits"]["train"]["rows"] == 8 - len(held)
    assert (environment["splits"]["eval"] or {"rows": 0})["rows"] == len(held)
    assert environment["splits"]["train"]["sample_task_id"] not in held and environment["tools"] == ["python"]

    pricing = derived["pricing"]  # gamma derived from this model's config.json on the config's hardware
    assert data["pricing"]["gamma"] is None and pricing["model"] == str(model / "config.json")
    assert pricing["hardware"] == data["pricing"]["hardware"].replace("_", "-")
    assert pricing["gamma"] == pytest.approx(2 * shape["num_hidden_layers"] * shape["hidden_size"]
                                             * shape["num_key_value_heads"] / shape["num_attention_heads"]
                                             * pricing["flops"] / pricing["bandwidth"] / pricing["active_params"])
    assert resolved["pricing"]["gamma"] == pricing["gamma"]
    assert derived["reward"]["ordering"] == "strict" and derived["reward"]["ordering_margin"] > 0

    training = resolved["training"]  # GRPOConfig, built: the file's flat keys reached it
    for key in ("learning_rate", "num_generations", "per_device_train_batch_size", "max_completion_length",
                "gradient_accumulation_steps", "max_steps", "bf16", "use_vllm", "vllm_mode"):
        assert training[key] == data[key], key
    launch = derived["launch"]
    assert launch["num_processes"] == 1 and launch["mixed_precision"] == "bf16"
    assert launch["vllm"]["mode"] == data["vllm_mode"]
    if data["vllm_mode"] == "server":
        assert launch["vllm"]["server"] == data["vllm_server_base_url"] == "http://localhost:8000"
        assert (launch["vllm"]["host"], launch["vllm"]["port"]) == ("localhost", 8000)
    else:
        assert launch["vllm"]["gpu_memory_utilization"] == data["vllm_gpu_memory_utilization"]
    if not torch.cuda.is_available():  # resolved anyway, and what needs a GPU is said
        assert training["use_cpu"] is True
        assert any(w.startswith("bf16: true needs a GPU") for w in derived["warnings"])
        assert any(w.startswith("use_vllm: true") for w in derived["warnings"])
        assert "dry run: warning: bf16: true needs a GPU" in err


def test_the_default_config_dry_runs_without_building_the_tiny_policy(tmp_path: Path, monkeypatch, capsys):
    from pte_rl.tiny.config import TinyConfig, tiny_policy_path

    monkeypatch.setenv("PTE_RL_CACHE", str(tmp_path / "cache"))
    resolved, _ = _dry_run(["--output_dir", str(tmp_path / "run")], capsys)
    policy = resolved["derived"]["policy"]
    assert policy == {"tiny": str(tiny_policy_path(TinyConfig())), "built": False}
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()
    assert resolved["pricing"]["gamma"] == 0.005 and resolved["derived"]["pricing"]["mode"] == "given"
    splits = resolved["derived"]["environment"]["splits"]
    assert (splits["train"]["rows"], splits["eval"]["rows"]) == (2000, 200)  # arith's n_train / n_eval defaults
    assert resolved["derived"]["environment"]["tools"] == ["calculator", "python"]
    assert resolved["training"]["use_cpu"] is True and resolved["derived"]["launch"]["mixed_precision"] == "no"


def test_the_facts_config_dry_runs_with_the_tiny_policy_of_facts(tmp_path: Path, monkeypatch, capsys):
    from pte_rl.tiny.config import tiny_config, tiny_policy_path

    monkeypatch.setenv("PTE_RL_CACHE", str(tmp_path / "cache"))
    config = REPO / "recipes" / "configs" / "facts.yaml"
    resolved, _ = _dry_run(["--config", str(config), "--output_dir", str(tmp_path / "run")], capsys)
    # facts' own build settings (TINY_SETTINGS: a copy drill over any tokens)
    assert resolved["derived"]["policy"] == {"tiny": str(tiny_policy_path(tiny_config("facts"))), "built": False}
    environment = resolved["derived"]["environment"]
    assert environment["tools"] == ["search", "visit"]
    # 850 questions of the `years` kinds in the default world (200 cities), 200 held out
    assert (environment["splits"]["train"]["rows"], environment["splits"]["eval"]["rows"]) == (650, 200)
    assert environment["splits"]["train"]["sample_task_id"].startswith("facts-")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_a_built_tiny_policy_is_described_from_its_config(tmp_path: Path, capsys):
    """--tiny_dir naming a complete build: its config.json is read (a copy of a build's files)."""
    from pte_rl.tiny.config import BUILD_INFO

    built = tmp_path / "tiny"
    built.mkdir()
    shutil.copy(MODELS / "qwen2.5-1.5b-instruct" / "config.json", built / "config.json")
    (built / BUILD_INFO).write_text("{}")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(MODELS / "qwen2.5-1.5b-instruct" / name, built / name)
    resolved, _ = _dry_run(["--tiny_dir", str(built), "--output_dir", str(tmp_path / "run")], capsys)
    policy = resolved["derived"]["policy"]
    assert (policy["tiny"], policy["built"], policy["layers"], policy["hidden_size"]) == (str(built), True, 28, 1536)


def test_a_deepspeed_config_reports_its_zero_stage():
    import json as json_module

    from pte_rl.training.describe import zero_stage

    files = sorted((REPO / "launch" / "deepspeed").glob("*.json"))
    assert files, "launch/ holds no DeepSpeed config"
    for path in files:
        assert zero_stage(str(path)) == json_module.loads(path.read_text())["zero_optimization"]["stage"]
    assert zero_stage({"zero_optimization": {"stage": 2}}) == 2


def test_a_dry_run_stops_with_status_2_on_the_first_problem(tmp_path: Path, capsys):
    config = REPO / "recipes" / "configs" / "qwen2.5-1.5b-math-vllm.yaml"
    with pytest.raises(SystemExit) as info:
        _recipe().main(["--config", str(config), "--model_name_or_path", str(MODELS / "qwen2.5-1.5b-instruct"),
                        "--env.options.dataset", str(tmp_path / "absent.jsonl"), "--dry_run", "true"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"command line (--env.options.dataset): field 'env.options.dataset': {tmp_path / 'absent.jsonl'}: " \
           f"no such file or directory" in err

"""The "Writing one" environment of docs/environments.md, read out of the page, trains under the recipe.

It runs with a real local model directory (a copy of the built tiny policy: a Qwen2 with weights and a
tokenizer) for 2 GRPO steps. The example has no held-out split, so the recipe says once that it will not
evaluate and trains; ``model_name_or_path: tiny`` with it fails at once, since it cannot script a warm start.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from script_helpers import load_script

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "environments.md"
NO_EVAL_LINE = "has no held-out split (eval_dataset is None): no evaluation at the start or the end of this run"


def _example(tmp_path: Path) -> Path:
    """The section's module, exactly as the page shows it, written to ``tmp_path/capitals.py``."""
    section = DOCS.read_text(encoding="utf-8").split("### Writing one", 1)[1].split("\n### ", 1)[0]
    module = re.search(r"```python\n(.*?)```", section, re.S)
    assert module, "docs/environments.md: 'Writing one' lost its python block"
    path = tmp_path / "capitals.py"
    path.write_text(module.group(1))
    return path


def _policy(tmp_path: Path) -> Path:
    """A writable copy of a real local policy dir: the cached tiny build, else a small Qwen2 made here."""
    import shutil

    from pte_rl.tiny.config import TinyConfig, is_built, tiny_policy_path

    cached = tiny_policy_path(TinyConfig())
    if is_built(cached):
        return Path(shutil.copytree(cached, tmp_path / "policy"))
    from rollout_helpers import build_byte_tokenizer, build_tiny_model

    return build_tiny_model(tmp_path / "policy", build_byte_tokenizer())


@pytest.mark.timeout(600)
def test_the_documented_environment_trains_two_steps_without_evaluation(tmp_path: Path):
    env_file, model, out = _example(tmp_path), _policy(tmp_path), tmp_path / "run"
    argv = [sys.executable, str(REPO / "recipes" / "grpo_pte.py"), "--model_name_or_path", str(model),
            "--env.name", str(env_file), "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--num_generations", "2", "--max_completion_length", "32", "--output_dir", str(out),
            "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(argv, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=550)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count(NO_EVAL_LINE) == 1
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["step"] for r in steps if "pte/mean" in r] == [1, 2]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines() if line.strip()]
    assert len(samples) == 2 * 4  # 2 steps x 4 completions (2 prompts x 2 generations)
    assert {s["task_id"] for s in samples} <= {"capital-France", "capital-Peru", "capital-Japan"}
    assert (out / "final" / "config.json").is_file()
    assert not (out / "eval").exists() and not (out / "eval_start").exists()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["env"]["name"] == str(env_file) and saved["derived"]["model_path"] == str(model)


def test_the_no_evaluation_decision_comes_before_anything_long(tmp_path: Path, capsys):
    """A dry run says it too; --eval.only on an environment without a held-out split exits 2."""
    recipe = load_script("recipes/grpo_pte.py", "grpo_pte_recipe")
    env_file, model = _example(tmp_path), REPO / "tests" / "data" / "models" / "qwen2.5-1.5b-instruct"
    common = ["--model_name_or_path", str(model), "--env.name", str(env_file), "--report_to", "none",
              "--output_dir", str(tmp_path / "run")]
    recipe.main([*common, "--dry_run", "true"])
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["derived"]["environment"]["splits"] == {
        "train": {"rows": 3, "sample_task_id": "capital-France"}, "eval": None}
    assert resolved["derived"]["environment"]["tools"] == ["lookup"]
    assert "environment capitals has no held-out split: the run would not evaluate" in resolved["derived"]["warnings"]
    with pytest.raises(SystemExit) as info:
        recipe.main([*common, "--eval.only", "true"])
    assert info.value.code == 2
    assert "command line (--eval.only): field 'eval.only': environment capitals has no held-out split" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tiny_with_an_environment_that_cannot_script_fails_before_any_build(tmp_path: Path, monkeypatch, capsys):
    recipe = load_script("recipes/grpo_pte.py", "grpo_pte_recipe")
    monkeypatch.setenv("PTE_RL_CACHE", str(tmp_path / "cache"))
    env_file = _example(tmp_path)
    for extra in ([], ["--dry_run", "true"]):
        with pytest.raises(SystemExit) as info:
            recipe.main(["--env.name", str(env_file), "--output_dir", str(tmp_path / "run"), *extra])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert f"{REPO / 'recipes' / 'configs' / 'default.yaml'}:" in err and "field 'model_name_or_path'" in err
        assert "defines no scripted_trajectories" in err and "docs/tiny.md" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()

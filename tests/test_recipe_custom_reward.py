"""A reward from outside the repository trains: a plain function in TRL's contract, named by dotted path
in a preset YAML of the user's own, through the recipe's command line (2 GRPO steps on a small model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rollout_helpers import build_byte_tokenizer, build_tiny_model

REPO = Path(__file__).resolve().parents[1]

REWARD_MODULE = '''
def brevity(prompts, completions, completion_ids, **kwargs):
    """1 / (1 + generated tokens): shorter completions score higher, in (0, 1]."""
    return [1.0 / (1 + len(ids)) for ids in completion_ids]
'''

PRESET = """
description: Correctness plus a brevity bonus of the user's own.
ordering: free
rewards:
  correctness: {function: correctness, weight: 1.0}
  brevity: {function: "my_rewards:brevity", weight: 0.1}
"""


@pytest.mark.timeout(900)
def test_a_reward_from_outside_the_repo_trains(tmp_path: Path):
    user = tmp_path / "user"  # outside the repository, as a user's own project would be
    user.mkdir()
    (user / "my_rewards.py").write_text(REWARD_MODULE)
    (user / "brief.yaml").write_text(PRESET)
    model = build_tiny_model(tmp_path / "model", build_byte_tokenizer())
    out = tmp_path / "run"
    argv = [
        sys.executable, str(REPO / "recipes" / "grpo_pte.py"), "--model_name_or_path", str(model),
        "--reward.preset", str(user / "brief.yaml"), "--env.options.n_train", "8", "--env.options.n_eval", "2",
        "--env.max_turns", "2", "--eval.at_start", "false", "--eval.n", "1", "--eval.samples", "1",
        "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations=2",
        "--max_completion_length", "24", "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
    ]
    environment = {**os.environ, "PYTHONPATH": str(user), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(argv, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=850)
    assert done.returncode == 0, done.stderr[-3000:]

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    brevity = [r["rewards/brevity/mean"] for r in records if "rewards/brevity/mean" in r]
    assert len(brevity) == 2, records  # one per logged step
    # At most 24 generated tokens, at least 1 (the end of turn): 1/25 <= 1 / (1 + n) <= 1/2 (logged as float32).
    assert all(1 / 25 - 1e-6 <= value <= 1 / 2 + 1e-6 for value in brevity), brevity
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["reward"]["preset"] == str(user / "brief.yaml")
    assert saved["pricing"]["gamma"] == 0.005 and saved["pricing"]["delta"] == 0.0
    assert saved["derived"]["pricing"]["mode"] == "given"
    assert (out / "eval" / "summary.json").is_file() and (out / "final" / "config.json").is_file()

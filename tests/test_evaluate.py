"""Held-out evaluation (pte_rl.training.evaluate): the precision a checkpoint is evaluated at."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from pte_rl.pricing.cost import CostModel
from pte_rl.rollout import backends
from pte_rl.rollout.env import load_environment
from pte_rl.tiny.build import build_tiny_policy
from pte_rl.training.evaluate import evaluate_policy


@pytest.fixture
def bf16_checkpoint(tmp_path):
    """The tiny policy's weights under a config that says bfloat16, as hub checkpoints do."""
    model_dir = tmp_path / "policy"
    shutil.copytree(build_tiny_policy(log=lambda _: None), model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["dtype"] = "bfloat16"
    (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir


@pytest.mark.parametrize(("dtype", "expected"), [("float32", torch.float32), ("auto", torch.bfloat16)])
def test_a_checkpoint_is_evaluated_at_the_dtype_asked_not_the_one_its_config_names(
        bf16_checkpoint, tmp_path, monkeypatch, dtype, expected):
    seen = []
    original = backends.TransformersBackend.__init__

    def record(self, model, *args, **kwargs):
        seen.append((model.dtype, model.device.type))
        original(self, model, *args, **kwargs)

    monkeypatch.setattr(backends.TransformersBackend, "__init__", record)
    from transformers import AutoTokenizer

    summary = evaluate_policy(
        bf16_checkpoint, AutoTokenizer.from_pretrained(bf16_checkpoint), load_environment("arith", n_eval=2),
        tmp_path / "eval", cost_model=CostModel(gamma=0.005), n=1, samples=1, max_completion_length=32,
        dtype=dtype, device="cpu",
    )
    assert seen == [(expected, "cpu")]
    assert summary["n"] == 1 and (tmp_path / "eval" / "summary.json").is_file()

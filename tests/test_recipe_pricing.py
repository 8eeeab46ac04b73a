"""pte_rl.pricing.resolve: the one place a pricing section becomes a CostModel (recipe, score, report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pte_rl.cli import main
from pte_rl.errors import InputError
from pte_rl.pricing.resolve import PricingConfig, resolve_pricing

# 2 layers, d_model 64, Hkv/Hq = 2/4: the paper's gamma = 2 * 2 * 64 * 0.5 * HOI / N_active.
CONFIG = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
          "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100}


def _profile(tmp_path: Path, **fields) -> str:
    path = tmp_path / f"{fields['name']}.json"
    path.write_text(json.dumps(fields))
    return str(path)


def test_a_fixed_gamma_has_delta_0_unless_given():
    model, how = resolve_pricing(PricingConfig(gamma=0.005, hardware="h200"))
    assert (model.gamma, model.delta, how["mode"], how["delta_source"]) == (0.005, 0.0, "given", "default")
    model, how = resolve_pricing(PricingConfig(gamma=0.005, delta=0.25, attention="exact"))
    assert (model.delta, model.attention, how["delta_source"]) == (0.25, "exact", "given")


def test_a_measured_profile_gives_gamma_and_delta(tmp_path):
    rig = _profile(tmp_path, name="rig", gamma=0.02, delta=1.0, model="tiny")
    model, how = resolve_pricing(PricingConfig(hardware=rig))  # no model config needed
    assert (model.gamma, model.delta, how["mode"], how["delta_source"]) == (0.02, 1.0, "measured", "profile")
    model, how = resolve_pricing(PricingConfig(hardware=rig, delta=0.0))  # an explicit number wins
    assert (model.delta, how["delta_source"]) == (0.0, "given")


def test_the_formula_with_a_profile_delta(tmp_path):
    box = _profile(tmp_path, name="box", flops=1e15, bandwidth=1e12, delta=0.5)
    model, how = resolve_pricing(PricingConfig(hardware=box, active_params="1e9"), CONFIG)
    # HOI = 1e15 / 1e12 = 1000: gamma = 2 * 2 * 64 * 0.5 * 1000 / 1e9 = 1.28e-4.
    assert model.gamma == pytest.approx(1.28e-4) and how["mode"] == "paper" and how["hoi"] == 1000
    assert (model.delta, how["delta_source"]) == (0.5, "profile")
    with pytest.raises(InputError, match="model config"):
        resolve_pricing(PricingConfig(hardware=box))  # no measured gamma and no config


def test_pte_rl_score_prices_by_the_same_rule(tmp_path, capsys):
    rig = _profile(tmp_path, name="rig", gamma=0.02, delta=1.0)
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {
        "role": "assistant", "content": "a", "usage": {"prompt_tokens": 100, "completion_tokens": 10}}]}) + "\n")
    assert main(["score", str(log), "--hardware", rig, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    model, _ = resolve_pricing(PricingConfig(hardware=rig))
    assert (summary["gamma"], summary["delta"]) == (model.gamma, model.delta) == (0.02, 1.0)
    # prefill 100 + 0.02 * 100 * 10 + delta 1.0 * 10 = 130.
    assert summary["metrics"]["pte/mean"] == pytest.approx(130.0)


@pytest.mark.parametrize(("pricing", "message"), [
    (PricingConfig(gamma=-0.1), "field 'gamma': expected a finite non-negative number or null, got -0.1"),
    (PricingConfig(gamma=0.1, cache="lru"), "field 'cache': expected one of evict, reuse, measured"),
    (PricingConfig(mode="flops"), "field 'mode': expected one of paper, kv_bytes"),
])
def test_bad_pricing_names_the_field(pricing, message):
    with pytest.raises(InputError, match=message):
        resolve_pricing(pricing, CONFIG, source="run.yaml")

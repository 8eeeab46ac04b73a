"""pte_rl.studies.calibrate and pte_rl.studies.replay: the cost fit, profiles, the engines (real tiny model and a
fake vLLM)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pte_rl.studies import replay as replay_module
from pte_rl.studies.calibrate import (
    CostFit,
    calibrate,
    calibration_record,
    fit_costs,
    load_calibration,
    measure_grid,
    save_calibration,
)
from pte_rl.studies.replay import TransformersEngine, VLLMEngine, make_engine

CONTEXTS = [64, 256, 1024, 2048]
DECODES = [4, 16, 64, 128]


def grid(a: float, b: float, c: float, e: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    context, decode = (np.array(v, dtype=float).ravel() for v in np.meshgrid(CONTEXTS, DECODES))
    return context, decode, a * context + b * context * decode + c * decode + e


def test_fit_recovers_exact_coefficients_without_noise():
    context, decode, y = grid(a=1e-5, b=2e-8, c=3e-4)
    fit = fit_costs(context, decode, y)
    assert fit.a == pytest.approx(1e-5, rel=1e-9)
    assert fit.b == pytest.approx(2e-8, rel=1e-9)
    assert fit.c == pytest.approx(3e-4, rel=1e-9)
    assert fit.gamma == pytest.approx(2e-3, rel=1e-9)  # b / a
    assert fit.delta == pytest.approx(30.0, rel=1e-9)  # c / a
    assert fit.r2 == pytest.approx(1.0)


def test_fit_recovers_coefficients_from_noisy_timings_within_their_standard_errors():
    rng = np.random.default_rng(3)
    context, decode, y = grid(a=1e-5, b=2e-8, c=3e-4)
    noisy = y * (1 + 0.005 * rng.standard_normal(len(y)))
    fit = fit_costs(context, decode, noisy)
    assert fit.e is None  # no per-turn constant in the data: not kept
    for value, se, truth in ((fit.gamma, fit.gamma_se, 2e-3), (fit.delta, fit.delta_se, 30.0)):
        assert abs(value - truth) < 4 * se
        assert se < 0.1 * truth
    assert fit.a == pytest.approx(1e-5, rel=0.05)


def test_delta_method_standard_errors_match_the_spread_over_repeated_experiments():
    # Independent check: simulate the experiment 400 times; the empirical SD of b/a and c/a must match
    # the delta-method SE of a single fit (both scale with the noise).
    rng = np.random.default_rng(11)
    context, decode, y = grid(a=1e-5, b=2e-8, c=3e-4)
    gammas, deltas, gamma_ses, delta_ses = [], [], [], []
    for _ in range(400):
        fit = fit_costs(context, decode, y * (1 + 0.03 * rng.standard_normal(len(y))), per_turn="never")
        gammas.append(fit.gamma)
        deltas.append(fit.delta)
        gamma_ses.append(fit.gamma_se)
        delta_ses.append(fit.delta_se)
    assert np.std(gammas) == pytest.approx(np.median(gamma_ses), rel=0.25)
    assert np.std(deltas) == pytest.approx(np.median(delta_ses), rel=0.25)


def test_a_significant_per_turn_constant_is_kept_and_recovered():
    rng = np.random.default_rng(5)
    context, decode, y = grid(a=1e-5, b=2e-8, c=3e-4, e=5e-3)
    fit = fit_costs(context, decode, y * (1 + 0.01 * rng.standard_normal(len(y))))
    assert fit.e == pytest.approx(5e-3, rel=0.15)
    assert fit.epsilon == pytest.approx(500.0, rel=0.15)  # e / a in prefill tokens
    assert fit_costs(context, decode, y, per_turn="never").e is None


@pytest.mark.parametrize(
    ("context", "decode", "times", "message"),
    [
        ([1, 2, 3], [1, 2, 3], [1.0, 2.0, 3.0], "at least 4 grid points"),
        ([64, 64, 64, 64], [1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], "two context lengths"),
        ([64, 128, 64, 128], [1, 1, 2, 2], [1.0, 0.0, 3.0, 4.0], "positive"),
    ],
)
def test_fit_rejects_grids_it_cannot_fit(context, decode, times, message):
    with pytest.raises(ValueError, match=message):
        fit_costs(context, decode, times)


# ------------------------------------------------------------------------------------ fake engines


class ModelClock:
    """A clock that generation advances by a known cost model (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSamplingParams:
    max_tokens: int
    min_tokens: int
    ignore_eos: bool
    temperature: float


class FakeLLM:
    """vLLM's ``LLM.generate`` interface; the batch "takes" B*(a*C + b*C*D) + w*D seconds.

    ``w * D`` is a per-step cost shared by the batch (the weight read), so per sequence it is w*D/B:
    calibration must find gamma = b/a at every level and delta = w / (B * a).
    """

    def __init__(self, clock: ModelClock, a=1e-5, b=2e-8, w=4e-3, short_by: int = 0):
        self.clock, self.a, self.b, self.w, self.short_by = clock, a, b, w, short_by
        self.calls: list[tuple[list, FakeSamplingParams]] = []

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        batch, context, decode = len(prompts), len(prompts[0]["prompt_token_ids"]), params.max_tokens
        self.clock.now += batch * (self.a * context + self.b * context * decode) + self.w * decode

        completion = SimpleNamespace(token_ids=list(range(decode - self.short_by)))
        return [SimpleNamespace(outputs=[completion]) for _ in prompts]


def fake_vllm(monkeypatch, **kwargs) -> tuple[VLLMEngine, FakeLLM]:
    clock = ModelClock()
    monkeypatch.setattr(replay_module.time, "perf_counter", clock)
    llm = FakeLLM(clock, **kwargs)
    return VLLMEngine(llm=llm, sampling_params=FakeSamplingParams, vocab_size=50), llm


def test_vllm_engine_forces_exact_decode_lengths_and_random_ids_in_vocab(monkeypatch):
    engine, llm = fake_vllm(monkeypatch)
    timing = engine.run_turn(3, 40, 7, np.random.default_rng(0))
    prompts, params = llm.calls[0]
    assert len(prompts) == 3 and all(len(p["prompt_token_ids"]) == 40 for p in prompts)
    assert all(0 <= t < 50 for p in prompts for t in p["prompt_token_ids"])
    assert params == FakeSamplingParams(max_tokens=7, min_tokens=7, ignore_eos=True, temperature=0.0)
    assert timing.total_s == pytest.approx(3 * (1e-5 * 40 + 2e-8 * 40 * 7) + 4e-3 * 7)
    assert timing.prefill_s is None


def test_vllm_engine_rejects_a_short_generation(monkeypatch):
    engine, _ = fake_vllm(monkeypatch, short_by=1)
    with pytest.raises(RuntimeError, match="decoded 6 tokens where 7 were forced"):
        engine.run_turn(2, 10, 7, np.random.default_rng(0))


def test_calibration_through_the_vllm_path_finds_gamma_and_a_delta_shrinking_like_one_over_b(monkeypatch):
    engine, _ = fake_vllm(monkeypatch)
    result = calibrate(engine, model="fake", contexts=[64, 512, 1536], decodes=[4, 32, 128],
                       concurrency=[1, 8, 32], repeats=2)
    for level, fit in result.fits.items():
        assert fit.gamma == pytest.approx(2e-3, rel=1e-6)
        assert fit.delta == pytest.approx(4e-3 / (level * 1e-5), rel=1e-6)  # 400 / B
    assert result.fits[1].delta > result.fits[8].delta > result.fits[32].delta
    assert result.top.concurrency == 32


def test_vllm_needs_cuda_and_the_extra():
    with pytest.raises(ValueError, match="--device cuda"):
        make_engine("vllm", "some/model", device="cpu")
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed: the missing-extra message cannot be shown")
    with pytest.raises(ValueError, match=r"pte-rl\[vllm\]"):
        VLLMEngine("some/model")


# ------------------------------------------------------------------------------------ profiles


def synthetic_calibration(monkeypatch):
    engine, _ = fake_vllm(monkeypatch)
    return calibrate(engine, model="fake-model", contexts=[64, 512], decodes=[4, 64], concurrency=[1, 4], repeats=1)


def test_profile_saved_by_name_loads_through_hardware_and_gamma(monkeypatch, tmp_path):
    from pte_rl.pricing.gamma import resolve_gamma
    from pte_rl.pricing.hardware import list_profiles, load_profile

    monkeypatch.setenv("PTE_RL_PROFILE_DIR", str(tmp_path / "profiles"))
    result = synthetic_calibration(monkeypatch)
    record = calibration_record(result, "My Box", datasheet={"gamma": 0.5, "hardware": "h100-pcie"})
    profile_path, record_path = save_calibration(record)
    assert profile_path == tmp_path / "profiles" / "my-box.json"
    assert record_path == tmp_path / "profiles" / "calibrations" / "my-box.json"
    profile = load_profile("my-box")
    assert profile.gamma == pytest.approx(2e-3, rel=1e-6)
    assert profile.delta == pytest.approx(4e-3 / (4 * 1e-5), rel=1e-6)  # the highest level, B = 4
    assert profile.model == "fake-model"
    assert "my-box" in list_profiles()
    resolved = resolve_gamma(None, "my-box")
    assert (resolved.mode, resolved.gamma, resolved.delta) == ("measured", profile.gamma, profile.delta)
    loaded = load_calibration("my-box")
    assert loaded["fits"] == result.fits
    assert loaded["datasheet"]["gamma"] == 0.5


def test_profile_written_to_a_path_keeps_its_record_beside_it(monkeypatch, tmp_path):
    from pte_rl.pricing.hardware import load_profile

    result = synthetic_calibration(monkeypatch)
    profile_path, record_path = save_calibration(calibration_record(result, "x"), out=tmp_path / "box.json")
    assert record_path == tmp_path / "box.calibration.json"
    assert load_profile(str(profile_path)).gamma == pytest.approx(2e-3, rel=1e-6)
    assert load_calibration(profile_path)["fits"][1] == result.fits[1]  # found through the profile's path


def test_load_calibration_reports_bad_records(tmp_path):
    with pytest.raises(FileNotFoundError, match="no calibration record"):
        load_calibration(tmp_path / "missing.json")
    bad = tmp_path / "bad.calibration.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="field 'fits'"):
        load_calibration(bad)
    bad.write_text("{\n not json")
    with pytest.raises(ValueError, match="line 2"):
        load_calibration(bad)


# ------------------------------------------------------------------------- the real transformers engine


def save_tiny_qwen2(directory: Path) -> Path:
    """A 2-layer random Qwen2 (~100k parameters, seed 0) saved like a real model directory."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_qwen2(tmp_path_factory.mktemp("tiny_qwen2"))


def test_transformers_engine_prefills_the_whole_context_with_an_empty_cache_then_decodes_exactly(tiny_model_dir):
    engine = TransformersEngine(tiny_model_dir)
    seen = []
    forward = engine.model.forward

    def spy(*args, **kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        seen.append((tuple(kwargs["input_ids"].shape), cache.get_seq_length()))
        return forward(*args, **kwargs)

    engine.model.forward = spy
    for _ in range(2):  # two turns: the second starts from an empty cache again
        timing = engine.run_turn(3, 20, 5, np.random.default_rng(0))
        assert timing.total_s == pytest.approx(timing.prefill_s + timing.decode_s)
        assert timing.prefill_s > 0 and timing.decode_s > 0
    turn = [((3, 20), 0), ((3, 1), 20), ((3, 1), 21), ((3, 1), 22), ((3, 1), 23)]  # 1 prefill + D-1 steps
    assert seen == turn + turn


def test_transformers_engine_rejects_shapes_beyond_the_model(tiny_model_dir):
    engine = TransformersEngine(tiny_model_dir)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        engine.run_turn(1, 510, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="not a model directory"):
        TransformersEngine(tiny_model_dir / "nope")


def test_a_tiny_real_calibration_runs_and_the_cli_saves_a_loadable_profile(tiny_model_dir, tmp_path, monkeypatch):
    from pte_rl.cli import main
    from pte_rl.pricing.hardware import load_profile

    engine = TransformersEngine(tiny_model_dir)
    points = measure_grid(engine, [8, 256], [1, 8], 2, repeats=1)
    assert [(p.context_tokens, p.decode_tokens) for p in points] == [(8, 1), (8, 8), (256, 1), (256, 8)]
    assert all(p.time_s > 0 and len(p.repeats) == 1 for p in points)

    monkeypatch.setenv("PTE_RL_PROFILE_DIR", str(tmp_path))
    code = main(["calibrate", "--model", str(tiny_model_dir), "--contexts", "8,256", "--decodes", "1,8",
                 "--concurrency", "1,2", "--repeats", "3", "--name", "tiny-test", "--statistic", "min"])
    assert code == 0
    record = json.loads((tmp_path / "calibrations" / "tiny-test.json").read_text())
    assert sorted(record["fits"]) == ["1", "2"] and len(record["points"]) == 8
    assert record["datasheet"]["hardware"] == "h100-pcie" and record["datasheet"]["gamma"] > 0
    profile = load_profile("tiny-test")
    assert profile.gamma == pytest.approx(max(record["fits"]["2"]["gamma"], 0.0))


def test_cli_rejects_bad_grids(tiny_model_dir, capsys):
    from pte_rl.cli import main

    assert main(["calibrate", "--model", str(tiny_model_dir), "--contexts", "16", "--decodes", "2,6"]) == 2
    assert "at least two values" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(tiny_model_dir), "--concurrency", "1,x"]) == 2
    assert "--concurrency" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(tiny_model_dir / "none")]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_cost_fit_round_trips_through_json():
    context, decode, y = grid(a=1e-5, b=2e-8, c=3e-4)
    fit = fit_costs(context, decode, y, concurrency=8)
    assert CostFit(**json.loads(json.dumps(asdict(fit)))) == fit


def test_coefficients_are_constrained_non_negative():
    # Timings with no per-decoded-token cost and noise that pushes the unconstrained c below zero:
    # the fit holds c at 0 and equals the weighted least squares on the two remaining features.
    context, decode, y = grid(a=1e-5, b=2e-8, c=0.0)
    y = y * (1 - 0.05 * (decode == 128) + 0.05 * (decode == 4))
    unconstrained, *_ = np.linalg.lstsq(np.column_stack([context, context * decode, decode]) / y[:, None],
                                        np.ones_like(y), rcond=None)
    assert unconstrained[2] < 0
    fit = fit_costs(context, decode, y, per_turn="never")
    assert (fit.c, fit.se_c, fit.delta) == (0.0, 0.0, 0.0)
    two, *_ = np.linalg.lstsq(np.column_stack([context, context * decode]) / y[:, None], np.ones_like(y), rcond=None)
    assert (fit.a, fit.b) == pytest.approx(tuple(two), rel=1e-9)

"""The CPU rehearsal of a GPU config: the scaled-down model (fast) and 2 GRPO steps of the recipe (slow).

The figures below are worked out by hand from the public config.json of Qwen2.5-1.5B-Instruct
(tests/data/models/qwen2.5-1.5b-instruct: 28 layers, hidden 1536, 12 heads over 2 KV heads,
intermediate 8960, vocabulary 151936, tied embeddings) and the fixture tokenizer's 511 tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_helpers import REPO, load_script

from pte_rl.studies import scaled_model
from pte_rl.studies.scaled_model import scaled_config, scaled_down, scaled_shape

MODELS = REPO / "tests" / "data" / "models"
QWEN15 = MODELS / "qwen2.5-1.5b-instruct"
ROWS = REPO / "tests" / "data" / "rehearsal" / "math500_rows.jsonl"
FIXTURE_VOCAB = 511  # 503 byte-level BPE tokens + 8 added ones (make_fixtures.py)


def config_of(name: str) -> dict:
    return json.loads((MODELS / name / "config.json").read_text())


@pytest.fixture(scope="module")
def scaled_qwen15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scaled_down(QWEN15, tmp_path_factory.mktemp("scaled") / "qwen2.5-1.5b-l2")


def test_saved_config_keeps_the_ratios_of_qwen25_1_5b(scaled_qwen15: Path) -> None:
    config = json.loads((scaled_qwen15 / "config.json").read_text())
    # GQA 12 / 2 = 6 query heads per KV head: 1 KV head, 6 heads; 16 wide: hidden 96, head_dim 16
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["hidden_size"]) == (6, 1, 96)
    assert config["num_attention_heads"] / config["num_key_value_heads"] == 12 / 2
    # intermediate / hidden = 8960 / 1536 = 35/6, so 96 * 35 / 6 = 560
    assert config["intermediate_size"] == 560
    assert config["num_hidden_layers"] == 2
    assert config["vocab_size"] == FIXTURE_VOCAB
    assert config["model_type"] == "qwen2" and config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["tie_word_embeddings"] is True and config["hidden_act"] == "silu"
    assert config["rms_norm_eps"] == 1e-6
    assert config["rope_parameters"]["rope_theta"] == 1_000_000.0
    assert config["dtype"] == "bfloat16"  # as the real checkpoint
    assert config["use_sliding_window"] is False
    assert config["max_window_layers"] == 2  # 21 of 28 layers is 1.5 of 2, rounded to even


def test_special_token_ids_are_rebased_onto_the_fixture_tokenizer(scaled_qwen15: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(scaled_qwen15))
    config = json.loads((scaled_qwen15 / "config.json").read_text())
    generation = json.loads((scaled_qwen15 / "generation_config.json").read_text())
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    # 151645 is <|im_end|> and 151643 <|endoftext|> in the real tokenizer
    assert config["eos_token_id"] == im_end == tokenizer.eos_token_id
    assert config["bos_token_id"] == endoftext
    assert generation["eos_token_id"] == [im_end, endoftext]
    assert generation["pad_token_id"] == endoftext
    assert (generation["temperature"], generation["top_p"], generation["top_k"]) == (0.7, 0.8, 20)
    provenance = json.loads((scaled_qwen15 / "scaled_down.json").read_text())
    assert provenance["rebased_token_ids"] == {"151643": endoftext, "151645": im_end}
    assert provenance["source_config"] == config_of("qwen2.5-1.5b-instruct")


def test_scaled_model_loads_and_a_forward_pass_works(scaled_qwen15: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(scaled_qwen15), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(scaled_qwen15))
    assert type(model).__name__ == "Qwen2ForCausalLM"
    # embedding 511*96 = 49056; a layer: q 96*96+96, k and v 96*16+16 each, o 96*96, MLP 3*96*560,
    # 2 norms of 96: 183104; final norm 96; the head is the embedding (tied)
    assert sum(p.numel() for p in model.parameters()) == 49056 + 2 * 183104 + 96 == 415360
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.bias is not None and attention.o_proj.bias is None  # Qwen2: q/k/v biased
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (1, ids["input_ids"].shape[1], FIXTURE_VOCAB)
    assert torch.isfinite(logits).all()


def test_the_seed_decides_the_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    first = load_file(scaled_down(QWEN15, tmp_path / "a", seed=3) / "model.safetensors")
    again = load_file(scaled_down(QWEN15, tmp_path / "b", seed=3) / "model.safetensors")
    other = load_file(scaled_down(QWEN15, tmp_path / "c", seed=4) / "model.safetensors")
    key = "model.layers.0.mlp.up_proj.weight"
    assert first[key].equal(again[key])
    assert not first[key].equal(other[key])


def test_other_shapes_keep_their_ratios() -> None:
    seven = config_of("qwen2.5-7b-instruct")  # 28 heads over 4: GQA 7; 18944 / 3584 = 37/7
    shape = scaled_shape(seven)
    assert (shape.num_attention_heads, shape.num_key_value_heads, shape.hidden_size) == (7, 1, 112)
    assert shape.intermediate_size == 112 * 37 // 7 == 592
    assert scaled_config(seven, shape, 511)["tie_word_embeddings"] is False
    qwen3 = config_of("qwen3-1.7b")  # 16 heads over 8: GQA 2; explicit head_dim 128 = 2048 / 16
    shape = scaled_shape(qwen3, num_layers=3, num_key_value_heads=2)
    assert (shape.num_attention_heads, shape.hidden_size, shape.head_dim) == (4, 64, 16)
    assert shape.intermediate_size == 64 * 6144 // 2048 == 192
    config = scaled_config(qwen3, shape, 515)
    assert (config["head_dim"], config["attention_bias"], config["num_hidden_layers"]) == (16, False, 3)


def test_a_width_that_splits_into_no_even_head_dim_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hidden_size: 100 over 6 heads.*head_dim"):
        scaled_down(QWEN15, tmp_path / "bad", hidden_size=100)
    assert list(tmp_path.iterdir()) == []


def test_the_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("an older model")
    scaled_down(QWEN15, target)
    assert not (target / "stale.txt").exists() and (target / "config.json").is_file()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(scaled_model.json, "dumps", fail)  # the last file of the staging dir
    with pytest.raises(OSError, match="disk full"):
        scaled_down(QWEN15, tmp_path / "second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial dir, no staging left


def test_the_shipped_rows_are_math500_rows() -> None:
    from pte_rl.envs.math import load_rows

    label, rows = load_rows(str(ROWS))
    assert label == "math500_rows" and len(rows) == 8
    assert [r["answer"] for r in rows[:3]] == ["4", "x \\in [-2,7]", "\\frac{11}{2}"]
    shared = Path(REPO.parent / "shared" / "data" / "math500.jsonl")
    if shared.is_file():  # copied unchanged: the first 8 lines of the public file
        assert ROWS.read_text().splitlines() == shared.read_text().splitlines()[:8]


def rehearsal_module():
    return load_script("benchmarks/rehearse_gpu_config.py", "rehearse_gpu_config")


def test_the_launch_line_is_the_gpu_config_plus_cpu_overrides(tmp_path: Path) -> None:
    bench = rehearsal_module()
    args = bench.parse_cli(["--data-dir", str(tmp_path)])
    command = bench.recipe_command(args, tmp_path / "model", tmp_path / "run", 0.00702578132048336)
    text = " ".join(command)
    assert "recipes/grpo_pte.py --config " in text and text.endswith(
        "--use_vllm false --bf16 false --use_cpu true --gradient_checkpointing false")
    assert "--pricing.gamma 0.00702578132048336 " in text and "--max_steps 2 " in text
    assert f"--env.options.dataset {ROWS}" in text  # no math500.jsonl in the data dir: the shipped rows
    (tmp_path / "math500.jsonl").write_text("")
    assert f"--env.options.dataset {tmp_path / 'math500.jsonl'}" in " ".join(
        bench.recipe_command(args, tmp_path, tmp_path, 0.1))
    cuda = bench.recipe_command(bench.parse_cli(["--device", "cuda", "--use-vllm"]), tmp_path, tmp_path, 0.1)
    assert "--bf16" not in cuda and cuda[-4:] == ["--use_cpu", "false", "--use_vllm", "true"]
    assert "accelerate_1gpu.yaml" in " ".join(cuda)


def test_tool_calls_are_counted_with_malformed_ones_apart() -> None:
    bench = rehearsal_module()
    call = {"id": "c0", "type": "function", "function": {"name": "python", "arguments": "{}"}}
    invalid = {"id": "c1", "type": "function", "function": {"name": "invalid", "arguments": "<tool_call>x"}}
    records = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [call]},
                      {"role": "tool", "content": "4"}, {"role": "assistant", "content": "", "tool_calls": [invalid]}],
         "events": [{"turn": 1, "kind": "bad_json"}, {"turn": 1, "kind": "max_tokens"}]},
        {"messages": [{"role": "assistant", "content": "\\boxed{4}"}], "events": []},
    ]
    assert bench.count_calls(records) == {"trajectories": 2, "tool_calls": 2, "malformed": 1, "well_formed": 1}
    rows = [{"tool_calls": 1, "events": ["bad_json@0", "max_tokens@0"]}, {"tool_calls": 0, "events": []}]
    assert bench.count_calls(rows) == {"trajectories": 2, "tool_calls": 1, "malformed": 1, "well_formed": 0}
    steps = [{"tools/calls_per_trajectory": 0.0}, {"tools/calls_per_trajectory": 0.25}]
    assert bench.training_calls(steps, rows, 4)["tool_calls"] == 1 and bench.training_calls(steps, rows, 4)[
        "trajectories"] == 8


@pytest.mark.slow
def test_two_grpo_steps_of_the_gpu_config_on_cpu(tmp_path: Path) -> None:
    import yaml

    bench = rehearsal_module()
    result = bench.rehearse(bench.parse_cli(["--work-dir", str(tmp_path), "--data-dir", str(tmp_path / "none")]))
    run = tmp_path / "run"
    # gamma of the real model on h100_pcie (flops 1.513e15, bandwidth 2e12: HOI 756.5). Active parameters:
    # 28 layers of attention (2*1536^2 + 2*1536*256 + 1536 + 2*256) and MLP (3*1536*8960), plus the embedding.
    active = 28 * (2 * 1536**2 + 2 * 1536 * 256 + 1536 + 2 * 256 + 3 * 1536 * 8960) + 151936 * 1536
    assert result["gamma_real"] == pytest.approx(2 * 28 * 1536 * (2 / 12) * 756.5 / active, rel=1e-12)
    # the scaled model would be priced 2 * 2 * 96 * (1/6) * 756.5 / (415360 - 5 * 96): another model
    assert result["gamma_scaled"] == pytest.approx(2 * 2 * 96 / 6 * 756.5 / (415360 - 480), rel=1e-12)
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["pricing"]["gamma"] == result["gamma_real"] == result["gamma_in_run"]
    training = resolved["training"]
    assert (training["use_cpu"], training["bf16"], training["use_vllm"], training["gradient_checkpointing"]) == (
        True, False, False, False)
    assert (training["max_steps"], training["learning_rate"], training["lr_scheduler_type"]) == (
        2, 1e-6, "constant_with_warmup")  # the GPU config's own settings, kept
    assert (resolved["env"]["name"], resolved["env"]["max_turns"], resolved["reward"]["preset"]) == ("math", 6, "pte")
    assert json.loads((run / "final" / "config.json").read_text())["num_hidden_layers"] == 2

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "step_time" in row]
    assert [row["step"] for row in steps] == [1, 2] and result["steps"] == 2
    for row, tokens in zip(steps, result["tokens_per_step"], strict=True):
        assert row["pte/mean"] > 0 and row["step_time"] > 0
        if row["turns/mean"] == 1:  # TRL's token count = pte_rl's context + generated tokens, per completion
            assert tokens == pytest.approx(row["tokens/total_mean"] * 4)
    train = result["tool_calls"]["train"]
    assert train["trajectories"] == 8 and train["sampled"]["trajectories"] == 8  # 4 a step: every one sampled
    assert train["sampled"]["tool_calls"] == train["tool_calls"]  # samples.jsonl agrees with the metrics
    assert set(result["evaluations"]) == {"eval_start", "eval"}
    assert result["wandb_offline_runs"] and (run / "wandb").is_dir()
    assert result["peak_rss_mib"] > 100
    assert "steps of recipes/configs/qwen2.5-1.5b-math-vllm.yaml" in bench.report(result)

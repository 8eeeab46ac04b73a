"""`pte-rl score`, `pte-rl gamma`, `pte-rl hardware`: results worked by hand, bad input -> exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import count_tokens
from test_jsonl import GENERATION_PROMPT, HEADER, TOOL0, TURN0, TURN1, chat

from pte_rl.cli import main
from pte_rl.cli.score import ROW_FIELDS
from pte_rl.pricing.gamma import compute_gamma

LLAMA_CONFIG = {
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
}


def short_chat(correct: bool | None) -> dict:
    return {"id": "t2", "task_id": "arith-3", "correct": correct, "messages": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "usage": {"prompt_tokens": 50, "completion_tokens": 10}},
    ]}


def write_lines(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "runs.jsonl", [chat(), short_chat(False)])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# Trajectory t1: turns (context 120, decode 18, cached 64) and (147, 7, cached 138), one tool call.
# Trajectory t2: one turn (50, 10). gamma 0.01:
#   t1: prefill 120 + 147 = 267, decode 0.01 * (120*18 + 147*7) = 31.89 -> 298.89
#   t2: prefill 50, decode 0.01 * 500 = 5 -> 55
def test_score_usage_file(capsys, log: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "rows.jsonl"
    code, out, _ = run(capsys, "score", log, "--gamma", "0.01", "--out", out_file, "--json")
    assert code == 0
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [tuple(r) for r in rows] == [ROW_FIELDS, ROW_FIELDS]
    assert rows[0] == {"id": "t1", "task_id": "arith-17", "pte": pytest.approx(298.89), "prefill": 267.0,
                       "decode": pytest.approx(31.89), "generated_tokens": 25, "total_tokens": 292,
                       "tool_calls": 1, "turns": 2, "correct": True}
    assert rows[1]["pte"] == pytest.approx(55.0) and rows[1]["correct"] is False
    summary = json.loads(out)
    assert summary["metrics"]["pte/mean"] == pytest.approx((298.89 + 55) / 2)
    assert summary["metrics"]["pte/correct_mean"] == pytest.approx(298.89)
    assert summary["metrics"]["pte/incorrect_mean"] == pytest.approx(55.0)
    assert summary["metrics"]["correct/rate"] == 0.5
    assert summary["metrics"]["tools/calls_per_trajectory"] == 0.5
    assert summary["groups"]["ungraded"]["count"] == 0
    assert (summary["gamma"], summary["cache"], summary["gamma_source"]["mode"]) == (0.01, "evict", "given")
    # Solved work (default budgets): 1 correct (t1) of 2 graded, 35 generated tokens, PTE 353.89, 1 tool call.
    efficiency = {k: v for k, v in summary["metrics"].items() if k.startswith("efficiency/")}
    assert efficiency == pytest.approx({
        "efficiency/correct_per_1k_generated": 1000 / 35, "efficiency/correct_per_1m_pte": 1e6 / 353.89,
        "efficiency/pte_per_solved": 353.89, "efficiency/tool_productivity": 1.0,
        "efficiency/completion_rate": 1.0, "efficiency/accuracy_given_completion": 0.5,
        "efficiency/pte_per_rollout": 353.89 / 2, "efficiency/accuracy_at_pte_1000": 0.5,
        "efficiency/accuracy_at_pte_10000": 0.5, "efficiency/accuracy_at_pte_100000": 0.5,
        "efficiency/accuracy_pte_auc": (1 - 298.89 / 1e5) / 2,
    })
    assert summary["pte_budgets"] == [1000, 10000, 100000]


def test_score_pte_budgets(capsys, log: Path) -> None:
    code, out, _ = run(capsys, "score", log, "--gamma", "0.01", "--pte-budgets", "300,100", "--json")
    metrics = json.loads(out)["metrics"]
    assert code == 0 and json.loads(out)["pte_budgets"] == [100, 300]
    # t1 (correct, PTE 298.89) fits under 300, not under 100; the area runs to B_max = 300.
    assert (metrics["efficiency/accuracy_at_pte_100"], metrics["efficiency/accuracy_at_pte_300"]) == (0.0, 0.5)
    assert metrics["efficiency/accuracy_pte_auc"] == pytest.approx((1 - 298.89 / 300) / 2)
    assert "efficiency/accuracy_at_pte_1000" not in metrics
    code, out, _ = run(capsys, "score", log, "--gamma", "0.01", "--pte-budgets", "300,100")
    assert "accuracy at PTE 100: 0.000, 300: 0.500; area to 300: 0.002" in out
    assert "28.571 correct / 1k generated tokens" in out and "353.9 PTE per solved" in out


@pytest.mark.parametrize(
    "options, expected_t1, expected_t2",
    [
        # measured: prefill (120 - 64) + (147 - 138) = 65; t2 reports no cache: all 50 prefilled
        (["--cache", "measured"], 65 + 31.89, 55),
        # reuse: 120 + (147 - 138 - 0) = 129 (147 - (120 + 18) = 9 new tokens); t2 has one turn
        (["--cache", "reuse"], 129 + 31.89, 55),
        # exact: + 0.01 * (18*17/2 + 7*6/2) = 0.01 * 174; t2: + 0.01 * 10*9/2
        (["--attention", "exact"], 298.89 + 1.74, 55.45),
        # delta 2: + 2 per decoded token (25 and 10)
        (["--delta", "2"], 298.89 + 50, 75),
    ],
)
def test_score_options(capsys, log: Path, options: list[str], expected_t1: float, expected_t2: float) -> None:
    code, out, _ = run(capsys, "score", log, "--gamma", "0.01", "--json", *options)
    assert code == 0
    summary = json.loads(out)
    assert summary["groups"]["correct"]["pte"] == pytest.approx(expected_t1)
    assert summary["groups"]["incorrect"]["pte"] == pytest.approx(expected_t2)


def test_score_text_summary(capsys, log: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "score", log, "--gamma", "0.01", "--out", tmp_path / "r.jsonl")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("2 trajectories from") and "gamma 0.01 (given)" in lines[0]
    correct = next(line for line in lines if line.startswith("correct"))
    assert "298.9" in correct and "55.0" in next(line for line in lines if line.startswith("incorrect"))
    assert "accuracy 50.0% of 2 graded" in out and "incorrect / correct = 0.18x" in out
    assert "wrote 2 rows" in out


def test_score_with_model_config_and_hardware(capsys, log: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(LLAMA_CONFIG))
    code, out, _ = run(capsys, "score", log, "--model-config", config, "--hardware", "h200",
                       "--active-params", "8e9", "--json")
    assert code == 0
    gamma = compute_gamma(LLAMA_CONFIG, "h200", active_params=8e9).gamma
    summary = json.loads(out)
    assert summary["gamma"] == pytest.approx(gamma)
    assert summary["groups"]["incorrect"]["pte"] == pytest.approx(50 + gamma * 500)
    assert summary["gamma_source"]["hardware"] == "h200"


def test_score_with_calibrated_profile(capsys, log: Path, tmp_path: Path) -> None:
    profile = tmp_path / "rig.json"
    profile.write_text(json.dumps({"name": "rig", "gamma": 0.02, "delta": 1.0, "model": "tiny"}))
    code, out, _ = run(capsys, "score", log, "--hardware", profile, "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["gamma"], summary["delta"], summary["gamma_source"]["mode"]) == (0.02, 1.0, "measured")
    assert summary["groups"]["incorrect"]["pte"] == pytest.approx(50 + 0.02 * 500 + 1.0 * 10)


def test_score_with_tokenizer(capsys, tiny_tokenizer_dir: Path, tmp_path: Path) -> None:
    log = write_lines(tmp_path / "raw.jsonl", [chat(usage=False), short_chat(None)])
    out_file = tmp_path / "rows.jsonl"
    code, out, err = run(capsys, "score", log, "--tokenizer", tiny_tokenizer_dir, "--gamma", "0.001",
                         "--out", out_file, "--json")
    assert code == 0, err
    # independent count on the hand-written Qwen2.5 rendering
    context0 = count_tokens(HEADER + GENERATION_PROMPT)
    context1 = count_tokens(HEADER + GENERATION_PROMPT + TURN0 + TOOL0 + GENERATION_PROMPT)
    decode0, decode1 = count_tokens(TURN0), count_tokens(TURN1)
    row = json.loads(out_file.read_text().splitlines()[0])
    assert row["prefill"] == context0 + context1
    assert row["generated_tokens"] == decode0 + decode1
    assert row["total_tokens"] == context0 + context1 + decode0 + decode1
    assert row["pte"] == pytest.approx(context0 + context1 + 0.001 * (context0 * decode0 + context1 * decode1))
    summary = json.loads(out)
    assert summary["groups"]["ungraded"]["count"] == 1  # the second record, usage-counted, has correct null


BAD_CASES = {
    "malformed JSON line": ([chat(), '{"messages": [', short_chat(True)], [], "runs.jsonl:2: field '<line>'"),
    "no messages": ([chat(), {"id": "x", "correct": True}], [], "runs.jsonl:2: field 'messages'"),
    "negative token counts": (
        [short_chat(True) | {"messages": [{"role": "user", "content": "q"}, {
            "role": "assistant", "content": "a", "usage": {"prompt_tokens": 5, "completion_tokens": -2}}]}],
        [], "runs.jsonl:1: field 'messages[1].usage.completion_tokens'"),
    "needs a tokenizer": ([chat(usage=False)], [], "runs.jsonl:1: field 'messages[2].usage'"),
    "unknown hardware": ([chat()], ["--model-config", "CONFIG", "--hardware", "tpu-v9"], "unknown hardware 'tpu-v9'"),
    "config without fields": ([chat()], ["--model-config", "BADCONFIG"], "field 'num_hidden_layers'"),
    "no gamma source": ([chat()], [], "no gamma"),
    "gamma and config": ([chat()], ["--gamma", "0.1", "--model-config", "CONFIG"], "not both"),
    "negative gamma": ([chat()], ["--gamma", "-0.1"], "--gamma"),
    "flops without bandwidth": ([chat()], ["--model-config", "CONFIG", "--flops", "1e15"], "--bandwidth"),
    "missing tokenizer dir": ([chat(usage=False)], ["--tokenizer", "NOWHERE"], "not a directory"),
    "hardware without config": ([chat()], ["--hardware", "h200"], "--hardware h200 has no measured gamma"),
    "zero budget": ([chat()], ["--pte-budgets", "0,100"], "--pte-budgets"),
    "budget not a number": ([chat()], ["--pte-budgets", "lots"], "--pte-budgets"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_without_output(capsys, tmp_path: Path, case: str) -> None:
    records, options, message = BAD_CASES[case]
    log = write_lines(tmp_path / "runs.jsonl", records)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(LLAMA_CONFIG))
    bad_config = tmp_path / "bad_config.json"
    bad_config.write_text(json.dumps({k: v for k, v in LLAMA_CONFIG.items() if k != "num_hidden_layers"}))
    paths = {"CONFIG": str(config), "BADCONFIG": str(bad_config), "NOWHERE": str(tmp_path / "nowhere")}
    options = [paths.get(o, o) for o in options]
    if not {"--gamma", "--model-config", "--hardware"} & set(options) and case != "no gamma source":
        options += ["--gamma", "0.01"]
    out_file = tmp_path / "rows.jsonl"
    code, out, err = run(capsys, "score", log, *options, "--out", out_file)
    assert code == 2
    assert err.startswith("pte-rl score: error: ") and message in err, err
    assert not out_file.exists() and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_config.json", "config.json", "runs.jsonl"]


def test_console_entry_exit_status(tmp_path: Path) -> None:
    log = write_lines(tmp_path / "runs.jsonl", ["not json"])
    proc = subprocess.run([sys.executable, "-m", "pte_rl.cli", "score", str(log), "--gamma", "0.1"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "runs.jsonl:1: field '<line>'" in proc.stderr


# ---- pte-rl gamma / pte-rl hardware ----
def test_gamma_command(capsys, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    code, out, _ = run(capsys, "gamma", tmp_path, "--active-params", "8B", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["gamma"] == pytest.approx(2 * 32 * 4096 * 0.25 * 756.5 / 8e9)
    assert (data["num_layers"], data["head_ratio"], data["hoi"], data["active_params_estimated"]) == (32, 0.25, 756.5,
                                                                                                   False)
    code, text, _ = run(capsys, "gamma", tmp_path / "config.json")
    assert code == 0 and "estimated from the config" in text and "layers              32" in text
    code, custom, _ = run(capsys, "gamma", tmp_path, "--active-params", "8B", "--flops", "1513T",
                          "--bandwidth", "2T", "--json")
    assert json.loads(custom)["gamma"] == pytest.approx(data["gamma"])
    code, kv, _ = run(capsys, "gamma", tmp_path, "--active-params", "8B", "--mode", "kv_bytes", "--json")
    assert json.loads(kv)["kv_bytes_per_token"] == 32 * 2 * 8 * 128 * 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--hardware", "tpu-v9"], "unknown hardware"),
        (["--flops", "1e15"], "--bandwidth"),
        (["--active-params", "-3"], "'active_params'"),
        (["--hardware", "h200", "--flops", "1T", "--bandwidth", "1T"], "not both"),
    ],
)
def test_gamma_command_bad_input(capsys, tmp_path: Path, argv: list[str], message: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    code, _, err = run(capsys, "gamma", tmp_path, *argv)
    assert code == 2 and message in err


def test_gamma_command_missing_field(capsys, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({k: v for k, v in LLAMA_CONFIG.items() if k != "num_attention_heads"}))
    code, _, err = run(capsys, "gamma", config)
    assert code == 2 and f"{config}: field 'num_attention_heads'" in err


def test_hardware_command(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PTE_RL_PROFILE_DIR", str(tmp_path))
    code, out, _ = run(capsys, "hardware", "--json")
    assert code == 0
    profiles = {p["name"]: p for p in json.loads(out)["profiles"]}
    assert profiles["h100-pcie"]["hoi"] == 756.5 and len(profiles) >= 9
    code, text, _ = run(capsys, "hardware")
    assert "mi300x" in text and "AMD Instinct MI300X datasheet" in text

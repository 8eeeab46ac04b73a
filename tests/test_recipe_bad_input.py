"""Bad input to the recipe ends with exit status 2 and a message naming the file:line (or the command line)
and the field, before anything is trained or written: one test per case, through ``main()`` in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from script_helpers import load_script

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "data" / "models" / "qwen2.5-1.5b-instruct"
ROWS = REPO / "tests" / "data" / "math" / "math500.jsonl"


def _fails(argv: list[str], capsys) -> str:
    """main(argv) exits 2; its stderr."""
    with pytest.raises(SystemExit) as info:
        load_script("recipes/grpo_pte.py", "grpo_pte_recipe").main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def _config(tmp_path: Path, model: str = str(MODEL), options: str = f"dataset: {ROWS}", preset: str = "pte") -> Path:
    """A run's config file; its line numbers: model 1, env.options.<first> 5, reward.preset 7."""
    path = tmp_path / "run.yaml"
    path.write_text(f"model_name_or_path: {model}\nenv:\n  name: math\n  options:\n    {options}\n"
                    f"reward:\n  preset: {preset}\nuse_cpu: true\nreport_to: none\noutput_dir: {tmp_path / 'run'}\n")
    return path


def test_an_unknown_env_option(tmp_path: Path, capsys):
    config = _config(tmp_path, options="datset: x.jsonl")
    err = _fails(["--config", str(config)], capsys)
    assert f"{config}:5: field 'env.options.datset': math accepts dataset, eval_dataset" in err
    assert not (tmp_path / "run").exists()


def test_a_missing_data_path(tmp_path: Path, capsys):
    config = _config(tmp_path, options=f"dataset: {tmp_path / 'absent.jsonl'}")
    err = _fails(["--config", str(config)], capsys)
    assert f"{config}:5: field 'env.options.dataset': {tmp_path / 'absent.jsonl'}: no such file or directory" in err
    assert not (tmp_path / "run").exists()
    err = _fails(["--config", str(_config(tmp_path)), "--env.options.eval_dataset", str(tmp_path / "gone")], capsys)
    assert f"command line (--env.options.eval_dataset): field 'env.options.eval_dataset': {tmp_path / 'gone'}" in err


def test_a_bad_row_in_the_data_names_the_data_file_and_the_option(tmp_path: Path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?"}\n')
    config = _config(tmp_path, options=f"dataset: {rows}")
    err = _fails(["--config", str(config)], capsys)
    assert f"{config}:4: environment math: {rows}:2: field 'answer'" in err


def test_a_preset_that_does_not_exist(tmp_path: Path, capsys):
    config = _config(tmp_path, preset="nonesuch")
    err = _fails(["--config", str(config)], capsys)
    assert f"{config}:7: field 'reward.preset': nonesuch" in err
    assert not (tmp_path / "run").exists()


def test_a_model_dir_without_config_json(tmp_path: Path, capsys):
    empty = tmp_path / "empty_model"
    empty.mkdir()
    config = _config(tmp_path, model=str(empty))
    err = _fails(["--config", str(config)], capsys)
    assert f"{config}:1: field 'model_name_or_path': {empty} is a directory without config.json" in err
    err = _fails(["--config", str(config), "--model_name_or_path", str(tmp_path / "nowhere")], capsys)
    assert f"command line (--model_name_or_path): field 'model_name_or_path': {tmp_path / 'nowhere'}: no such " \
           f"model directory" in err
    assert not (tmp_path / "run").exists()


def test_a_hub_model_that_cannot_be_fetched(tmp_path: Path, monkeypatch, capsys):
    """Offline without a cache: the hub name is blamed, with what to download (gamma needs its config.json)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = _config(tmp_path, model="nobody/no-such-model")
    err = _fails(["--config", str(config), "--dry_run", "true"], capsys)
    assert f"{config}:1: field 'model_name_or_path': nobody/no-such-model: no local directory" in err
    assert "hf download nobody/no-such-model" in err


def test_grpo_config_checks_are_input_errors_naming_the_file(tmp_path: Path, capsys):
    config = _config(tmp_path)
    config.write_text(config.read_text() + "fp16: true\nbf16: true\n")
    err = _fails(["--config", str(config)], capsys)
    assert f"{config} (TRL's GRPOConfig keys): " in err
    assert not (tmp_path / "run").exists()

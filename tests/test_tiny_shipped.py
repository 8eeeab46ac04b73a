"""The shipped default policy: in step with the build settings, intact, small, loadable; copied, not built."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest

from pte_rl.tiny import build, config, shipped
from pte_rl.tiny.build import build_tiny_policy
from pte_rl.tiny.config import (
    BUILD_INFO,
    BUILD_VERSION,
    CACHE_VARIABLE,
    TinyConfig,
    settings_hash,
    settings_record,
    tiny_config,
    tiny_policy_path,
)
from pte_rl.tiny.shipped import (
    FILES_KEY,
    REFRESH_COMMAND,
    SHIPPED_DIR,
    SHIPPED_FACTS_DIR,
    ShippedPolicyError,
    refresh_command,
    ship,
    stale_reason,
)

MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "chat_template.jinja"}


def record() -> dict:
    return json.loads((SHIPPED_DIR / BUILD_INFO).read_text())


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """$PTE_RL_CACHE on an empty directory, and a build that fails the test if anything builds."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_VARIABLE, str(cache))

    def no_build(*args, **kwargs):
        raise AssertionError("built from the seed instead of copying the shipped policy")

    monkeypatch.setattr(build, "_build", no_build)
    return cache


def test_shipped_copy_is_the_build_of_the_current_settings():
    """Fails after a change of a TinyConfig default, the environment's source or BUILD_VERSION until the
    shipped copy is rebuilt; the message names the change and the command."""
    assert stale_reason() is None, stale_reason()
    assert record()["settings_hash"] == settings_hash(TinyConfig())
    assert record()["build_version"] == BUILD_VERSION
    assert record()["config"] == json.loads(json.dumps(settings_record(TinyConfig())))


def test_a_stale_shipped_copy_is_named_with_the_command(monkeypatch):
    """The in-step check above can fail: another setting, build version or environment source."""
    reason = stale_reason(TinyConfig(seed=1))
    assert reason is not None and "seed: shipped 0, now 1" in reason and REFRESH_COMMAND in reason
    assert f"found {record()['settings_hash']}" in reason and "tiny_build.json: settings_hash" in reason
    monkeypatch.setattr(config, "BUILD_VERSION", BUILD_VERSION + 1)
    monkeypatch.setattr(shipped, "BUILD_VERSION", BUILD_VERSION + 1)
    reason = stale_reason()
    assert reason is not None and f"BUILD_VERSION: shipped {BUILD_VERSION}, now {BUILD_VERSION + 1}" in reason
    monkeypatch.undo()
    monkeypatch.setattr(shipped, "settings_hash", lambda _: "0123456789ab")  # as an edited env file would
    reason = stale_reason()
    assert reason is not None and "environment's source" in reason and REFRESH_COMMAND in reason


def test_shipped_files_match_their_hashes_and_stay_small():
    files = record()[FILES_KEY]
    assert set(files) == MODEL_FILES
    on_disk = {p.name for p in SHIPPED_DIR.iterdir() if p.is_file()}
    assert on_disk == MODEL_FILES | {BUILD_INFO}  # nothing shipped that the record does not cover
    for name, expected in files.items():
        assert sha256(SHIPPED_DIR / name) == expected, name
    assert files["model.safetensors"].startswith("bc2922df")  # the build the docs describe (docs/tiny.md)
    total = sum((SHIPPED_DIR / name).stat().st_size for name in on_disk)
    assert 500_000 < total < 2 * 1024 * 1024, total


def test_shipped_policy_loads_and_copies_the_expression_into_its_call():
    """A trained policy, not a fresh one: greedy, its first turn on held-out arith items is a
    well-formed tool call whose argument is the question's expression (or a boxed answer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM

    from pte_rl.rollout.env import load_environment

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_DIR)
    model = AutoModelForCausalLM.from_pretrained(SHIPPED_DIR)
    assert isinstance(model, Qwen2ForCausalLM) and model.config.vocab_size == len(tokenizer)
    assert sum(p.numel() for p in model.parameters()) == record()["parameters"]
    env = load_environment("arith")
    rows = env.split("eval").select(range(3))
    for row in rows:
        expression = re.fullmatch(r"What is (.+)\?", row["prompt"][-1]["content"]).group(1)
        ids = tokenizer.apply_chat_template(row["prompt"], tools=env.tool_schemas(), add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)["input_ids"]
        out = model.generate(ids, max_new_tokens=40, do_sample=False)
        text = tokenizer.decode(out[0, ids.shape[1]:])
        call = re.fullmatch(r'<tool_call>\n\{"name": "(calculator|python)", "arguments": \{"(expression|code)": '
                            r'"([^"]+)"\}\}\n</tool_call><\|im_end\|>', text)
        boxed = re.search(r"\\boxed\{(-?\d+)\}", text)
        assert (call and call.group(3) == expression) or (boxed and boxed.group(1) == str(row["ground_truth"])), text


def test_an_empty_cache_gets_a_byte_identical_copy(empty_cache):
    messages = []
    path = build_tiny_policy(log=messages.append)
    assert path == tiny_policy_path(TinyConfig()) == empty_cache / f"tiny-{record()['settings_hash']}"
    assert {p.name for p in path.iterdir()} == {p.name for p in SHIPPED_DIR.iterdir() if p.is_file()}
    for shipped_file in SHIPPED_DIR.iterdir():
        assert (path / shipped_file.name).read_bytes() == shipped_file.read_bytes(), shipped_file.name
    assert "copied the shipped build" in messages[-1]
    assert [p.name for p in empty_cache.iterdir()] == [path.name]  # no staging directory left
    assert build_tiny_policy(log=messages.append) == path and "reusing" in messages[-1]


def test_other_settings_or_force_build_from_the_seed(empty_cache, monkeypatch):
    built = []
    monkeypatch.setattr(build, "_build", lambda config, key, target, log: built.append((config, target)) or target)
    messages = []
    other = TinyConfig(seed=1)
    assert build_tiny_policy(other, log=messages.append) == tiny_policy_path(other)
    assert built == [(other, tiny_policy_path(other))] and "other settings" in messages[0]
    build_tiny_policy(force=True, log=messages.append)
    assert built[-1] == (TinyConfig(), tiny_policy_path(TinyConfig())) and "from seed 0" in messages[-1]
    assert not empty_cache.exists() or not any(empty_cache.iterdir())  # nothing copied on either path


@pytest.fixture
def damaged(tmp_path, monkeypatch):
    """A copy of the shipped directory, put where the package's would be."""
    copy = tmp_path / "default"
    shutil.copytree(SHIPPED_DIR, copy)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", copy)
    return copy


def test_a_corrupted_shipped_file_fails_loudly(empty_cache, damaged):
    weights = bytearray((damaged / "model.safetensors").read_bytes())
    weights[len(weights) // 2] ^= 0x01  # one bit of one weight
    (damaged / "model.safetensors").write_bytes(bytes(weights))
    expected = record()[FILES_KEY]["model.safetensors"]
    with pytest.raises(ShippedPolicyError, match=f"model.safetensors: expected sha256 {expected}, found "):
        build_tiny_policy(log=lambda _: None)
    assert not empty_cache.exists() or not any(empty_cache.iterdir())  # neither the copy nor a staging dir


def test_a_missing_shipped_file_or_record_entry_fails_loudly(empty_cache, damaged):
    (damaged / "tokenizer.json").unlink()
    with pytest.raises(ShippedPolicyError, match="tokenizer.json: expected sha256 .*, found no such file"):
        build_tiny_policy(log=lambda _: None)
    info = record()
    del info[FILES_KEY]
    (damaged / BUILD_INFO).write_text(json.dumps(info))
    with pytest.raises(ShippedPolicyError, match=f"{FILES_KEY}: expected name -> sha256"):
        build_tiny_policy(log=lambda _: None)


def test_ship_refreshes_the_copy_from_a_build(tmp_path):
    source = tmp_path / "build"
    shutil.copytree(SHIPPED_DIR, source)
    info = record()
    del info[FILES_KEY]  # a build from before the record listed its files
    (source / BUILD_INFO).write_text(json.dumps(info))
    destination = ship(source, tmp_path / "shipped")
    written = json.loads((destination / BUILD_INFO).read_text())
    assert written[FILES_KEY] == {name: sha256(source / name) for name in MODEL_FILES}
    assert {k: v for k, v in written.items() if k != FILES_KEY} == info
    assert stale_reason(directory=destination) is None
    info["settings_hash"] = "0123456789ab"
    (source / BUILD_INFO).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="settings_hash: expected .* only the default build ships"):
        ship(source, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_cli_ship_needs_a_build_of_the_defaults(tmp_path, capsys):
    from pte_rl.cli import main

    assert main(["tiny", "ship", "--from", str(tmp_path / "nothing")]) == 2
    assert "expected a tiny-policy build" in capsys.readouterr().err


# facts: its default build ships too (pte_rl/tiny/facts/), under the same contract.

FACTS = tiny_config("facts")


def facts_record() -> dict:
    return json.loads((SHIPPED_FACTS_DIR / BUILD_INFO).read_text())


def test_shipped_facts_copy_is_the_build_of_the_current_settings():
    """Fails after a change of facts' settings, its source (pte_rl/envs/facts.py, _facts_scripts.py) or
    BUILD_VERSION until the facts copy is rebuilt; the message names the facts command."""
    assert stale_reason(FACTS) is None, stale_reason(FACTS)
    assert facts_record()["settings_hash"] == settings_hash(FACTS) != record()["settings_hash"]
    assert facts_record()["config"] == json.loads(json.dumps(settings_record(FACTS)))
    reason = stale_reason(tiny_config("facts", seed=1))
    assert reason is not None and "seed: shipped 0, now 1" in reason
    assert refresh_command("facts") in reason and "--env facts" in refresh_command("facts")
    assert "no copy ships" in stale_reason(tiny_config("math"))


def test_shipped_facts_files_match_their_hashes_and_stay_small():
    files = facts_record()[FILES_KEY]
    assert set(files) == MODEL_FILES
    on_disk = {p.name for p in SHIPPED_FACTS_DIR.iterdir() if p.is_file()}
    assert on_disk == MODEL_FILES | {BUILD_INFO}
    for name, expected in files.items():
        assert sha256(SHIPPED_FACTS_DIR / name) == expected, name
    total = sum((SHIPPED_FACTS_DIR / name).stat().st_size for name in on_disk)
    assert 500_000 < total < 2 * 1024 * 1024, total


def test_shipped_facts_policy_searches_for_the_named_entity():
    """Greedy, its first turn on held-out questions is one or two well-formed `search` calls, the
    scripted word then a name; most names are the question's, copied token by token (a trained
    policy: a fresh one writes no call; this one miscopies a few, e.g. Faekrimom for Faekratom)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pte_rl.rollout.env import load_environment

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_FACTS_DIR)
    model = AutoModelForCausalLM.from_pretrained(SHIPPED_FACTS_DIR)
    assert sum(p.numel() for p in model.parameters()) == facts_record()["parameters"]
    env = load_environment("facts", kinds="years")
    named = []
    for row in env.split("eval").select(range(8)):
        question = row["prompt"][-1]["content"]
        ids = tokenizer.apply_chat_template(row["prompt"], tools=env.tool_schemas(), add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)["input_ids"]
        out = model.generate(ids, max_new_tokens=80, do_sample=False)
        text = tokenizer.decode(out[0, ids.shape[1]:])
        calls = [json.loads(c) for c in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text)]
        assert 1 <= len(calls) <= 2 and text.endswith("<|im_end|>"), text
        for call in calls:
            assert call["name"] == "search" and call["arguments"]["k"] in (1, 5), text
            word, *_, name = call["arguments"]["query"].split()
            assert word in question, (question, text)
            named.append(name in question)
    assert sum(named) >= 0.75 * len(named), named


def test_an_empty_cache_gets_the_facts_copy(empty_cache):
    messages = []
    path = build_tiny_policy(FACTS, log=messages.append)
    assert path == empty_cache / f"tiny-{facts_record()['settings_hash']}"
    for shipped_file in SHIPPED_FACTS_DIR.iterdir():
        assert (path / shipped_file.name).read_bytes() == shipped_file.read_bytes(), shipped_file.name
    assert "copied the shipped build" in messages[-1] and str(SHIPPED_FACTS_DIR) in messages[-1]


def test_an_environment_without_a_shipped_copy_builds(empty_cache, monkeypatch, tmp_path):
    built = []
    monkeypatch.setattr(build, "_build", lambda config, key, target, log: built.append(config) or target)
    messages = []
    build_tiny_policy(tiny_config("math"), log=messages.append)
    assert built == [tiny_config("math")] and "no copy ships for the environment math" in messages[0]
    with pytest.raises(ValueError, match="env: expected one of arith, facts"):
        ship(SHIPPED_DIR, tmp_path / "x", env="math")
    with pytest.raises(ValueError, match="the default settings of facts"):  # arith's build is not facts'
        ship(SHIPPED_DIR, tmp_path / "x", env="facts")
    assert not (tmp_path / "x").exists()


def test_cli_ship_names_the_environments(capsys):
    from pte_rl.cli import main

    assert main(["tiny", "ship", "--env", "math"]) == 2
    assert "--env: expected one of arith, facts" in capsys.readouterr().err

"""benchmarks/ablation_behaviours.py: paths, accuracy and mean PTE per arm, on hand-made facts runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_helpers import load_script

from pte_rl.envs import facts
from pte_rl.rollout.env import load_environment

OPTIONS = {"kinds": "years", "n_cities": 40, "n_eval": 40}


def _run(root: Path, name: str, chats: list[tuple[tuple[str, list[dict]], bool]]) -> Path:
    run = root / name
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(json.dumps({
        "env": {"name": "facts", "options": OPTIONS}, "reward": {"preset": name.rsplit("-", 1)[0]}, "seed": 0,
        "pricing": {"gamma": 0.01, "cache": "evict", "attention": "paper", "delta": 0.0}}))
    rows = []
    for index, ((task, messages), correct) in enumerate(chats):
        boxed = messages[-1]["content"]  # the scripted answer: \\boxed{<gold>}
        rows.append({"id": f"{task}/{index}", "task_id": task, "correct": correct, "messages": messages,
                     "ground_truth": boxed[len("\\boxed{"):-1]})
    (run / "eval" / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_each_arm_gets_its_paths_shares_accuracy_and_mean_pte(tmp_path: Path):
    behaviours = load_script("benchmarks/ablation_behaviours.py", "ablation_behaviours")
    env = load_environment("facts", **OPTIONS)
    tools = {fn.__name__: fn for fn in env.tools}
    world = facts.build_world(0, 40)
    held_out = set(env.eval_dataset["task_id"])
    questions = {q["task_id"]: q for q in facts.build_questions(world, "years") if q["task_id"] in held_out}
    one = next(q for q in questions.values() if q["kind"] != "pair-founded")
    pair = next(q for q in questions.values() if q["kind"] == "pair-founded")

    def chat(question: dict, behaviour: str, usage: list[tuple[int, int]]) -> tuple[str, list[dict]]:
        messages = facts.script(question, behaviour, tools)
        turns = [m for m in messages if m["role"] == "assistant"]
        assert len(turns) == len(usage)
        for message, (prompt, completion) in zip(turns, usage, strict=True):
            message["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion}
        return question["task_id"], messages

    # PTE per turn (gamma 0.01, evict, the paper's attention term): prompt + 0.01 * prompt * completion
    snippet = chat(one, "snippet", [(100, 20), (200, 10)])    # 120 + 220 = 340
    visit = chat(one, "visit", [(100, 20), (200, 20), (600, 10)])  # 120 + 240 + 660 = 1020
    serial = chat(pair, "serial", [(100, 20), (200, 20), (300, 10)])  # 120 + 240 + 330 = 690
    runs = [_run(tmp_path, "pte-s0", [(snippet, True), (snippet, True), (visit, False), (serial, True)]),
            _run(tmp_path, "correctness-s0", [(visit, True)])]
    table = behaviours.tally(runs)
    pte_arm = table["pte"]
    assert pte_arm["one/*"]["n"] == 3 and pte_arm["one/snippet"]["share"] == pytest.approx(2 / 3)
    assert pte_arm["one/snippet"]["accuracy"] == 1.0 and pte_arm["one/visit"]["accuracy"] == 0.0
    assert pte_arm["one/snippet"]["pte"] == pytest.approx(340)
    assert pte_arm["one/*"]["pte"] == pytest.approx((2 * 340 + 1020) / 3)
    assert pte_arm["pair/serial"] == {"n": 1, "share": 1.0, "accuracy": 1.0, "pte": pytest.approx(690)}
    assert table["correctness"] == {key: {"n": 1, "share": 1.0, "accuracy": 1.0, "pte": pytest.approx(1020)}
                                    for key in ("one/*", "one/visit")}


def test_by_digits_splits_each_class_by_the_gold_years_digit_counts(tmp_path: Path):
    behaviours = load_script("benchmarks/ablation_behaviours.py", "ablation_behaviours")
    assert behaviours.digits("1176 and 916") == "4+3"
    assert behaviours.digits("942") == "3"
    assert behaviours.digits("1176, 916") == "4+3"
    assert behaviours.digits("Tekaen") == "other" and behaviours.digits("") == "other"
    assert behaviours.digits(None) == "other" and behaviours.digits("1176 and Tekaen") == "other"

    env = load_environment("facts", **OPTIONS)
    tools = {fn.__name__: fn for fn in env.tools}
    held_out = set(env.eval_dataset["task_id"])
    pairs = [q for q in facts.build_questions(facts.build_world(0, 40), "years")
             if q["task_id"] in held_out and q["kind"] == "pair-founded"]
    pair = pairs[0]
    expected = "+".join(str(len(year)) for year in pair["answer"].split(" and "))

    def chat(behaviour: str) -> tuple[str, list[dict]]:
        messages = facts.script(pair, behaviour, tools)
        for message in messages:
            if message["role"] == "assistant":
                message["usage"] = {"prompt_tokens": 100, "completion_tokens": 10}
        return pair["task_id"], messages

    wide, parallel = chat("wide"), chat("parallel")
    run = _run(tmp_path, "tokens-s0", [(wide, False), (wide, True), (parallel, True)])
    table = behaviours.tally([run], by_digits=True)["tokens"]
    assert table[f"pair:{expected}/*"]["n"] == 3
    assert table[f"pair:{expected}/wide"]["accuracy"] == 0.5
    assert table[f"pair:{expected}/parallel"]["share"] == pytest.approx(1 / 3)
    assert not any(key.startswith("pair/") for key in table)  # every key carries its digit counts


def test_subset_compares_the_arm_with_the_others_per_seed_on_the_chosen_classes(tmp_path: Path):
    behaviours = load_script("benchmarks/ablation_behaviours.py", "ablation_behaviours")
    env = load_environment("facts", **OPTIONS)
    tools = {fn.__name__: fn for fn in env.tools}
    held_out = set(env.eval_dataset["task_id"])
    ones = [q for q in facts.build_questions(facts.build_world(0, 40), "years")
            if q["task_id"] in held_out and q["kind"] != "pair-founded"]
    one = ones[0]
    digits = behaviours.digits(one["answer"])

    def chat(behaviour: str, prompt: int) -> tuple[str, list[dict]]:
        messages = facts.script(one, behaviour, tools)
        for message in messages:
            if message["role"] == "assistant":  # PTE per turn at gamma 0.01: prompt + 0.01 * prompt * 10
                message["usage"] = {"prompt_tokens": prompt, "completion_tokens": 10}
        return one["task_id"], messages

    # snippet: 2 turns at prompt 100 -> 2 * 110 = 220; visit: 3 turns at prompt 100 -> 330
    snippet, visit = chat("snippet", 100), chat("visit", 100)
    runs = [_run(tmp_path, "pte-s0", [(snippet, True), (snippet, True)]),               # acc 1.0, PTE 220
            _run(tmp_path, "pte-s1", [(snippet, True), (visit, False)]),                # acc 0.5, PTE 275
            _run(tmp_path, "correctness-s0", [(visit, True), (visit, False)]),          # acc 0.5, PTE 330
            _run(tmp_path, "correctness-s1", [(visit, True), (snippet, True)])]         # acc 1.0, PTE 275
    result = behaviours.subset(runs, [f"one:{digits}"])
    assert result["arms"]["pte"]["accuracy"]["mean"] == pytest.approx(0.75)
    assert result["arms"]["correctness"]["pte"]["mean"] == pytest.approx((330 + 275) / 2)
    versus = result["paired"]["correctness"]
    assert versus["seeds"] == [0, 1]
    assert versus["per_seed_accuracy_points"] == pytest.approx([50.0, -50.0])
    assert versus["per_seed_pte_change_pct"] == pytest.approx([100 * (220 / 330 - 1), 0.0])
    assert versus["accuracy_points"]["mean"] == pytest.approx(0.0)
    assert versus["accuracy_points"]["low"] < 0 < versus["accuracy_points"]["high"]
    assert "pte" not in result["paired"]
    other_class = "one:3" if digits != "3" else "one:4"
    with pytest.raises(SystemExit, match="no held-out item"):
        behaviours.subset(runs, [other_class])
    with pytest.raises(SystemExit, match="--arm tokens"):
        behaviours.subset(runs, [f"one:{digits}"], arm="tokens")

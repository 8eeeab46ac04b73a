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
        rows.append({"id": f"{task}/{index}", "task_id": task, "correct": correct, "messages": messages})
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

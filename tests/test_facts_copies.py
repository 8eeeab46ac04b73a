"""benchmarks/facts_copies.py: the copy counts on a hand-made file of scripted episodes."""

from __future__ import annotations

import json
from pathlib import Path

from script_helpers import load_script

from pte_rl.envs import facts


def test_the_tally_counts_each_pair_name_and_each_answer_year(tmp_path: Path):
    copies = load_script("benchmarks/facts_copies.py", "facts_copies")
    records = facts.scripted_trajectories(0, 200, worlds="environment")  # world 0: the one tally rebuilds
    pairs = [r for r in records if r["kind"] == "pair-founded" and r["behaviour"] == "parallel"][:2]
    ones = [r for r in records if r["kind"] != "pair-founded" and r["behaviour"] == "snippet"][:2]
    assert len(pairs) == 2 and len(ones) == 2
    # the second pair's second search misnames its city (one letter dropped), and its answer is wrong
    broken = json.loads(json.dumps(pairs[1]))
    call = broken["messages"][2]["tool_calls"][1]["function"]
    arguments = json.loads(call["arguments"])
    assert arguments["query"].startswith("founded and ")
    arguments["query"] = arguments["query"][:-1]
    call["arguments"] = json.dumps(arguments)
    path = tmp_path / "trajectories.jsonl"
    rows = [(pairs[0], True), (broken, False), (ones[0], True), (ones[1], True)]
    path.write_text("".join(json.dumps({"task_id": r["task_id"], "messages": r["messages"], "correct": ok}) + "\n"
                            for r, ok in rows))
    tally = copies.tally(path, 0, "years")
    assert tally["trajectories"] == 4 and tally["accuracy"] == 0.75
    assert tally["searches"] == 6 and tally["name_copied"] == 5 / 6
    assert tally["pair_names_copied"] == {"first": 1.0, "second": 0.5}
    assert tally["needed_page_first_when_named"] == 1.0
    assert tally["answer_years_from_tool_results"] == 1.0  # the scripted answers copy the results' years
    assert tally["episodes_all_searches_named"] == 3 and tally["accuracy_when_all_searches_named"] == 1.0
    assert copies.query_name("founded and Tekaen") == "Tekaen" == copies.query_name("Tekaen founded")

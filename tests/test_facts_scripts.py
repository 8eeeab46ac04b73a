"""`facts`' scripted behaviours: every path answers correctly, the labels round-trip, the chats hold the
environment's real tool outputs, and the wasteful paths cost what the module says they cost."""

from __future__ import annotations

import inspect
import json
from collections import Counter

import pytest

from pte_rl.envs import facts
from pte_rl.rollout.env import load_environment
from pte_rl.tools import Corpus


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return facts.scripted_trajectories(0, 300, n_cities=40, n_eval=40)


def _assistant_text(messages: list[dict]) -> str:
    """What the policy generates: its text and its calls (name + arguments), turn by turn."""
    parts = []
    for m in messages:
        if m["role"] == "assistant":
            parts.append(m.get("content") or "")
            parts.extend(c["function"]["name"] + c["function"]["arguments"] for c in m.get("tool_calls") or [])
    return "".join(parts)


def _context_chars(messages: list[dict]) -> int:
    """Characters every assistant turn reads (its whole context): what a re-prefill costs."""
    total, seen = 0, 0
    for m in messages:
        if m["role"] == "assistant":
            total += seen
        seen += len(m.get("content") or "") + sum(len(c["function"]["arguments"]) for c in m.get("tool_calls") or [])
    return total


def test_every_scripted_path_is_answered_correctly_and_labelled_as_scripted(records):
    env = load_environment("facts", n_cities=40, n_eval=40, kinds="years")
    behaviours = Counter(r["behaviour"] for r in records)
    assert set(behaviours) == set(facts.BEHAVIOURS), behaviours
    for record in records:
        assert env.check_answer(record["messages"][-1]["content"], record["ground_truth"]), record
        assert facts.classify_behaviour(record["messages"]) == record["behaviour"]
        first_results = next(m["content"] for m in record["messages"] if m["role"] == "tool")
        assert record["ground_truth"].split(" and ")[0] in first_results  # the answer is in what it read
    # every chat is about a fresh world: none is the environment's, and none repeats a question
    assert all(r["world_seed"] >= facts.FRESH_WORLD_BASE for r in records)
    assert len({r["world_seed"] for r in records}) == 300 // facts.CHATS_PER_WORLD
    assert len({(r["world_seed"], r["task_id"]) for r in records}) > 0.9 * len(records)


def test_environment_worlds_script_the_training_questions_of_world_0():
    env = load_environment("facts", n_cities=40, n_eval=40, kinds="years")
    records = facts.scripted_trajectories(0, 200, n_cities=40, n_eval=40, worlds="environment")
    assert {r["world_seed"] for r in records} == {0}
    assert {r["task_id"] for r in records} <= set(env.dataset["task_id"])
    with pytest.raises(ValueError, match="worlds: expected one of"):
        facts.scripted_trajectories(0, 3, n_cities=20, n_eval=10, worlds="mine")


def test_scripted_chats_hold_what_the_environments_tools_return(records):
    envs: dict[int, dict] = {}
    for record in records[:60]:
        if record["world_seed"] not in envs:
            env = load_environment("facts", seed=record["world_seed"], n_cities=40, n_eval=40, kinds="years")
            envs[record["world_seed"]] = {fn.__name__: fn for fn in env.tools}
        tools = envs[record["world_seed"]]
        messages = record["messages"]
        calls = {c["id"]: c["function"] for m in messages if m["role"] == "assistant"
                 for c in m.get("tool_calls") or []}
        for m in messages:
            if m["role"] == "tool":
                call = calls[m["tool_call_id"]]
                assert m["content"] == tools[call["name"]](**json.loads(call["arguments"]))


def test_the_first_search_result_is_the_needed_page_for_every_years_question():
    world = facts.build_world(0, 200)
    page_words = inspect.signature(facts.load_environment).parameters["page_words"].default
    corpus = Corpus(facts.build_corpus(world, 0, page_words))
    questions = facts.build_questions(world, "years")
    assert Counter(q["kind"] for q in questions) == {"founded": 200, "pair-founded": 200, "born": 150,
                                                     "invented": 150, "company-founded": 150}
    for question in questions:
        answers = question["answer"].split(" and ")
        for index, ((kind, name), answer) in enumerate(zip(question["entities"], answers, strict=True)):
            hit = corpus.search(facts.query(kind, name, second=index == 1), 1, 160)[0]
            assert hit.doc_id == facts.Entity(kind, name).doc_id
            assert answer in hit.snippet
        if question["kind"] == "pair-founded":  # a second query's "and" is a stop word: the same results
            kind, name = question["entities"][1]
            assert facts.query(kind, name, second=True) == f"founded and {name}"
            assert corpus.search(f"founded and {name}", 10, 160) == corpus.search(f"founded {name}", 10, 160)


def test_a_query_holds_the_name_in_the_same_tokens_as_the_question(records):
    """The policy copies an invented name token by token: its query must hold the name's tokens exactly
    as the question does (a byte-level BPE splits " Valmora" and "Valmora" differently)."""
    from transformers import AutoTokenizer

    from pte_rl.pricing.trajectory import renderable
    from pte_rl.tiny.shipped import SHIPPED_DIR

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_DIR)  # a byte-level BPE with Qwen2's pre-tokenizer

    def contains(haystack: list[int], needle: list[int]) -> int:
        return sum(haystack[i : i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))

    checked = 0
    for record in records[:60]:
        messages = renderable(record["messages"])
        question = tokenizer(messages[1]["content"], add_special_tokens=False)["input_ids"]
        for index, message in enumerate(messages):
            searches = [c for c in message.get("tool_calls") or [] if c["function"]["name"] == "search"]
            if message["role"] != "assistant" or not searches:
                continue
            before = tokenizer.apply_chat_template(messages[:index], add_generation_prompt=True, tokenize=False)
            upto = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
            turn = tokenizer(upto[len(before):], add_special_tokens=False)["input_ids"]  # the turn, as generated
            for call in searches:
                name = call["function"]["arguments"]["query"].split(" ", 1)[1]
                tokens = tokenizer(" " + name, add_special_tokens=False)["input_ids"]
                assert contains(question, tokens) == 1, (messages[1]["content"], name)
                assert contains(turn, tokens) >= 1, upto[len(before):]
                checked += 1
    assert checked >= 60


def test_the_naive_penalties_cannot_see_wide_and_serial_but_the_context_grows():
    env_tools = {fn.__name__: fn for fn in load_environment("facts", n_cities=40, n_eval=40).tools}
    world = facts.build_world(0, 40)
    pair = next(q for q in facts.build_questions(world, "years") if q["kind"] == "pair-founded")
    one = next(q for q in facts.build_questions(world, "years") if q["kind"] == "born")

    def chat(question: dict, behaviour: str) -> list[dict]:
        return facts.script(question, behaviour, env_tools)

    def calls(messages: list[dict]) -> int:
        return sum(len(m.get("tool_calls") or []) for m in messages)

    efficient, serial, wide = chat(pair, "parallel"), chat(pair, "serial"), chat(pair, "wide")
    assert len(_assistant_text(serial)) == len(_assistant_text(efficient)) == len(_assistant_text(wide))
    assert calls(serial) == calls(efficient) == calls(wide) == 2
    assert _context_chars(serial) > _context_chars(efficient) and _context_chars(wide) > _context_chars(efficient)
    snippet, wide_one, visit, repeat = (chat(one, b) for b in ("snippet", "wide", "visit", "repeat"))
    assert len(_assistant_text(wide_one)) == len(_assistant_text(snippet)) and calls(wide_one) == 1
    for wasteful in (visit, repeat):
        assert calls(wasteful) == 2
        assert _context_chars(wasteful) > 2 * _context_chars(snippet)


def test_classify_behaviour_on_foreign_chats():
    def turn(*calls: tuple[str, dict]) -> dict:
        return {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": n, "arguments": json.dumps(a)}} for n, a in calls]}

    answer = {"role": "assistant", "content": "\\boxed{1900}"}
    assert facts.classify_behaviour([answer]) == "direct"
    assert facts.classify_behaviour([turn(("search", {"query": "x"})), answer]) == "wide"  # default k is 5
    assert facts.classify_behaviour([turn(("search", {"query": "x", "k": 1})), answer]) == "snippet"
    assert facts.classify_behaviour([turn(("search", {"query": "x", "k": 1}), ("search", {"query": "y", "k": 1})),
                                     answer]) == "parallel"
    assert facts.classify_behaviour([turn(("visit", {"doc": "city-x"})), answer]) == "other"
    assert facts.classify_behaviour([turn(("search", {"query": "x", "k": "one"})), answer]) == "other"
    assert facts.classify_behaviour([{"role": "assistant", "content": "",
                                      "tool_calls": [{"function": {"name": "search", "arguments": "{bad"}}]},
                                     answer]) == "other"


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="behaviour: expected one of"):
        facts.script(facts.build_questions(facts.build_world(0, 20), "years")[0], "serial", {})
    with pytest.raises(ValueError, match=r"mix: expected .* \(unknown: \['teleport'\]\)"):
        facts.scripted_trajectories(0, 3, mix={"teleport": 1.0}, n_cities=20, n_eval=10)
    with pytest.raises(ValueError, match="kinds: expected one of"):
        load_environment("facts", n_cities=20, n_eval=10, kinds="everything")
    with pytest.raises(ValueError, match=r"unknown: \['weather'\]"):
        load_environment("facts", n_cities=20, n_eval=10, kinds=["founded", "weather"])
    with pytest.raises(ValueError, match="search_results: expected 1 to 10"):
        load_environment("facts", n_cities=20, n_eval=10, search_results=0)


def test_classic_questions_are_unchanged_by_the_new_kinds():
    world = facts.build_world(3, 30)
    classic = facts.build_questions(world)
    assert {q["kind"] for q in classic} == set(facts.CLASSIC_KINDS)
    everything = facts.build_questions(world, "all")
    assert [q for q in everything if q["kind"] in facts.CLASSIC_KINDS] == classic


def test_every_year_has_four_digits_and_the_worlds_keep_their_draws():
    years = [value for seed in range(5) for entity in facts.build_world(seed, 200)
             for value in entity.facts.values() if isinstance(value, int)]
    assert years and all(1000 <= year <= 9999 for year in years)
    assert facts._four_digits(942) == 1942 and facts._four_digits(1000) == 1000 and facts._four_digits(1900) == 1900
    # A city drawn before 1000 keeps its draw, moved a millennium on: the default world's pair about
    # Viatatour (942 when cities were founded from 800) and Tekaen (1108) is still held out, with the
    # same names, and only the three-digit year changed.
    env = load_environment("facts", kinds="years")
    held_out = dict(zip(env.eval_dataset["task_id"], env.eval_dataset["ground_truth"], strict=True))
    assert held_out["facts-city-viatatour-pair-founded"] == "1942 and 1108"
    cities = {e.name: e.facts["founded"] for e in facts.build_world(0, 200) if e.kind == "city"}
    assert max(cities.values()) > 1900  # only a moved draw (901-999) founds a city after 1900

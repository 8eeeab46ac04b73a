"""The embedded `arith` environment: items, splits, tools, checker and scripted behaviours."""

from __future__ import annotations

import json

import pytest

from pte_rl.rollout.env import held_out, load_environment
from pte_rl.tiny.data import environment_module
from pte_rl.tools import ToolInputError, Toolset, parse_tool_calls

arith = environment_module("arith")


@pytest.fixture(scope="module")
def env():
    return load_environment("arith", seed=3, n_train=300, n_eval=60)


def test_items_are_deterministic_in_the_seed():
    first = arith.sample_problems(7, 50)
    assert first == arith.sample_problems(7, 50)
    assert first != arith.sample_problems(8, 50)
    assert len({p.expression for p in first}) == 50


def test_difficulty_levels_follow_their_definition():
    problems = arith.sample_problems(0, 400, level_weights=(1, 1, 1, 1))
    levels = {p.level for p in problems}
    assert levels == {1, 2, 3, 4}
    for p in problems:
        if p.level == 1:  # identities: the answer is x or x followed by a 0
            assert (p.op, p.b) in {("+", 0), ("-", 0), ("*", 1), ("*", 10)}
            assert str(p.value) in (str(p.a), str(p.a) + "0")
            assert not p.needs_tool
        else:
            assert p.needs_tool
        if p.level == 2:
            assert p.op in "+-" and 10 <= p.b <= 99 and p.value > 0
        if p.level == 3:
            assert p.op == "*" and 10 <= p.a <= 99 and 10 <= p.b <= 99
        if p.level == 4:
            assert p.op == "*" and 100 <= p.a <= 999 and 10 <= p.b <= 99
    only_easy = arith.sample_problems(0, 30, level_weights=(1, 0, 0, 0))
    assert {p.level for p in only_easy} == {1}


def test_level_weights_set_the_mixture():
    problems = arith.sample_problems(1, 1000, level_weights=(0.5, 0.2, 0.3, 0.0))
    share = sum(p.level == 1 for p in problems) / len(problems)
    assert 0.45 < share < 0.55  # binomial sd 0.016
    assert not any(p.level == 4 for p in problems)
    with pytest.raises(ValueError, match="level_weights"):
        arith.sample_problems(1, 10, level_weights=(1, 0, 0))


def test_train_and_eval_are_disjoint_for_every_seed(env):
    train_ids = set(env.dataset["task_id"])
    assert len(train_ids) == 300 and len(set(env.eval_dataset["task_id"])) == 60
    assert not train_ids & set(env.eval_dataset["task_id"])
    other = load_environment("arith", seed=4, n_train=300, n_eval=60)
    assert not set(other.dataset["task_id"]) & set(env.eval_dataset["task_id"])
    # The held-out items do not depend on the training seed.
    assert other.eval_dataset["task_id"] == env.eval_dataset["task_id"]
    assert all(held_out(e, 0.2, seed=None) for e in env.eval_dataset["expression"])
    assert not any(held_out(e, 0.2, seed=None) for e in env.dataset["expression"])


def test_rows_have_the_contract_columns(env):
    row = env.dataset[0]
    assert row["prompt"][0] == {"role": "system", "content": arith.SYSTEM_PROMPT}
    assert row["prompt"][1]["role"] == "user" and row["prompt"][1]["content"] == f"What is {row['expression']}?"
    assert row["task_id"] == f"arith-{row['expression']}"
    assert int(row["ground_truth"]) == arith.evaluate(row["expression"])


def test_tools_compute_exactly_and_fail_clearly():
    assert arith.calculator("37*58") == "2146"
    assert arith.calculator("(12-20)*3") == "-24"
    python = arith.make_python_tool(report_lines=5)
    lines = python("37*58").splitlines()
    assert lines[-1] == "2146" and len(lines) == 5 + 4  # header, body lines, footer, "stdout:", result
    assert python("print(99*99)").splitlines()[-1] == "9801"
    assert arith.make_python_tool(0)("2+2") == "4"
    report = arith.python("10*10").rsplit("\n", 1)[0]
    assert not any(ch.isdigit() for ch in report)  # the only number in the response is the result
    for bad in ("import os", "2**8", "1/2", "x+1", "3*"):
        with pytest.raises(ToolInputError):
            arith.calculator(bad)


def test_tool_schemas_are_derived_and_calls_equally_short(env):
    names = [s["function"]["name"] for s in env.tool_schemas()]
    assert names == ["calculator", "python"]
    assert env.tool_schemas()[0]["function"]["parameters"]["required"] == ["expression"]


def test_checker_grades_the_final_answer(env):
    check = env.check_answer
    assert check("\\boxed{2146}", "2146") is True
    assert check("\\boxed{2145}", "2146") is False
    assert check("The answer is 2146.", "2146") is True
    assert check("no number here", "2146") is False


def _calls(messages):
    return [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]


@pytest.mark.parametrize("behaviour", arith.BEHAVIOURS)
def test_scripted_behaviours_have_their_shape(behaviour):
    easy, hard = arith.Problem(471, "*", 1, 1), arith.Problem(37, "*", 58, 3)
    for problem in (easy, hard):
        if behaviour == "direct" and problem.needs_tool:
            with pytest.raises(ValueError, match="direct"):
                arith.script(problem, behaviour)
            continue
        messages = arith.script(problem, behaviour)
        assert messages[-1] == {"role": "assistant", "content": f"\\boxed{{{problem.value}}}"}
        calls = _calls(messages)
        expected = {
            "direct": [],
            "call": [("calculator", {"expression": problem.expression})],
            "confirm": [("calculator", {"expression": problem.expression})] * (1 if problem is easy else 2),
            "repeat": [("calculator", {"expression": problem.expression})] * 2,
            "verbose": [("python", {"code": problem.expression})],
        }[behaviour]
        assert calls == expected
        tool_messages = [m for m in messages if m["role"] == "tool"]
        assert all(m["content"].splitlines()[-1] == str(problem.value) for m in tool_messages)
        assert arith.classify_behaviour(messages) == behaviour


def test_scripted_calls_parse_with_the_tool_protocol():
    toolset = Toolset([arith.calculator, arith.python])
    for behaviour in ("call", "verbose", "confirm"):
        messages = arith.script(arith.Problem(37, "*", 58, 3), behaviour)
        message = next(m for m in messages if m["role"] == "assistant" and m.get("tool_calls"))
        call = message["tool_calls"][0]["function"]
        text = f'<tool_call>\n{{"name": "{call["name"]}", "arguments": {call["arguments"]}}}\n</tool_call>'
        parsed = parse_tool_calls(text, toolset, turn=0)
        assert [(c.name, c.arguments) for c in parsed.calls] == [(call["name"], json.loads(call["arguments"]))]


def test_scripted_mixture_and_labels():
    records = arith.scripted_trajectories(0, 600)
    assert records == arith.scripted_trajectories(0, 600)
    counts = {b: sum(r["behaviour"] == b for r in records) for b in arith.BEHAVIOURS}
    assert all(counts[b] > 0 for b in arith.BEHAVIOURS)
    assert all(arith.classify_behaviour(r["messages"]) == r["behaviour"] for r in records)
    assert not any(r["behaviour"] == "direct" and r["level"] > 1 for r in records)
    wasteful = sum(not ((r["behaviour"] == "direct") or (r["behaviour"] == "call" and r["level"] > 1))
                   for r in records)
    assert 0.55 < wasteful / len(records) < 0.85
    assert not any(held_out(r["task_id"].removeprefix("arith-"), 0.2, seed=None) for r in records)
    # The warm start draws more hard items than the task (SCRIPTED_LEVEL_WEIGHTS), unless told otherwise.
    hard = sum(r["level"] > 1 for r in records) / len(records)
    assert abs(hard - sum(arith.SCRIPTED_LEVEL_WEIGHTS[1:])) < 0.06
    assert hard > sum(arith.DEFAULT_LEVEL_WEIGHTS[1:]) + 0.1
    as_task = arith.scripted_trajectories(0, 600, level_weights=arith.DEFAULT_LEVEL_WEIGHTS)
    assert abs(sum(r["level"] > 1 for r in as_task) / 600 - sum(arith.DEFAULT_LEVEL_WEIGHTS[1:])) < 0.06
    only_verbose = arith.scripted_trajectories(1, 20, mix={"verbose": 1.0})
    assert {r["behaviour"] for r in only_verbose} == {"verbose"}
    with pytest.raises(ValueError, match="unknown"):
        arith.scripted_trajectories(1, 5, mix={"lazy": 1.0})
    with pytest.raises(ValueError, match="allows no behaviour"):
        arith.scripted_trajectories(1, 50, mix={"direct": 1.0})


def test_classifier_flags_what_no_script_does():
    ask = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    call = {"id": "c", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "1+2"}'}}
    other = {"id": "d", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+1"}'}}
    tool = {"role": "tool", "tool_call_id": "c", "content": "3"}
    answer = {"role": "assistant", "content": "\\boxed{3}"}
    two_in_one = ask + [{"role": "assistant", "content": "", "tool_calls": [call, call]}, tool, tool, answer]
    different = ask + [{"role": "assistant", "content": "", "tool_calls": [call]}, tool,
                       {"role": "assistant", "content": "", "tool_calls": [other]}, tool, answer]
    assert arith.classify_behaviour(two_in_one) == "other"
    assert arith.classify_behaviour(different) == "other"
    assert arith.classify_behaviour(ask + [answer]) == "direct"

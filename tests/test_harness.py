"""Harness variants: each re-skin round-trips to the real tools, training-form calls under a variant are
format errors, bad variants fail with the variant's name, and the probe (CLI and offline comparison)."""

from __future__ import annotations

import json

import pytest
from rollout_helpers import ScriptedBackend, build_byte_tokenizer, build_tiny_model, count_tokens, one_torch_thread

from pte_rl.checkers import NumberChecker
from pte_rl.cli.harness import main as harness_main
from pte_rl.errors import InputError
from pte_rl.pricing.cost import pte
from pte_rl.pricing.jsonl import read_trajectories, write_trajectories
from pte_rl.pricing.trajectory import Event, ToolCall, Trajectory, Turn
from pte_rl.rollout.env import Environment
from pte_rl.rollout.harness import BUILTIN_VARIANTS, Harness, load_variant_file, reskin, resolve_variants
from pte_rl.rollout.harness.probe import FORMAT_KINDS, compare, measures, rollout_split
from pte_rl.rollout.loop import RolloutConfig
from pte_rl.tools import execute_calls, parse_tool_calls

RECEIVED: list[tuple[str, dict]] = []
SYSTEM = "Use the search tool or the calculator. Give the final answer as \\boxed{N}."


def search(query: str, k: int = 5) -> str:
    """Search the collection. Lists the best pages.

    Args:
        query: Keywords.
        k: How many results.
    """
    RECEIVED.append(("search", {"query": query, "k": k}))
    return f"results for {query}"


def calculator(expression: str) -> str:
    """Evaluate an expression.

    Args:
        expression: integers and + - *.
    """
    RECEIVED.append(("calculator", {"expression": expression}))
    return "42"


def make_env() -> Environment:
    from datasets import Dataset

    def rows(questions: list[str], offset: int) -> dict:
        return {"prompt": [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions],
                "ground_truth": ["42"] * len(questions), "task_id": [f"t{offset + i}" for i in range(len(questions))]}

    return Environment(name="toy", dataset=Dataset.from_dict(rows(["train question"], 0)),
                       eval_dataset=Dataset.from_dict(rows(["alpha question", "beta question"], 10)),
                       tools=[search, calculator], check_answer=NumberChecker(), system_prompt=SYSTEM)


HERMES = '<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'
TRAINING_CALL = HERMES.format(name="search", arguments='{"query": "tides", "k": 2}')
# Each variant: a search call written by hand in its form, and the real calls it must make.
ROUND_TRIPS = {
    "training": (TRAINING_CALL, [{"query": "tides", "k": 2}]),
    "renamed": (HERMES.format(name="search_tool", arguments='{"query": "tides", "k": 2}'),
                [{"query": "tides", "k": 2}]),
    "args": (HERMES.format(name="search", arguments='{"search_query": "tides", "search_k": 2}'),
             [{"query": "tides", "k": 2}]),
    "listargs": (HERMES.format(name="search", arguments='{"queries": ["tides", "moon"], "k": 2}'),
                 [{"query": "tides", "k": 2}, {"query": "moon", "k": 2}]),
    "terse": (TRAINING_CALL, [{"query": "tides", "k": 2}]),
    "pythonic": ('[search(query="tides", k=2)]', [{"query": "tides", "k": 2}]),
    "fenced": ('```tool_code\nsearch(query="tides", k=2)\n```', [{"query": "tides", "k": 2}]),
    "llama_json": ('{"name": "search", "parameters": {"query": "tides", "k": 2}}', [{"query": "tides", "k": 2}]),
    "answer_tag": (TRAINING_CALL, [{"query": "tides", "k": 2}]),
    "heldout_names": (HERMES.format(name="run_search", arguments='{"query": "tides", "k": 2}'),
                      [{"query": "tides", "k": 2}]),
    "heldout_args": (HERMES.format(name="search", arguments='{"query_text": "tides", "k_text": 2}'),
                     [{"query": "tides", "k": 2}]),
    "heldout_final": (TRAINING_CALL, [{"query": "tides", "k": 2}]),
    "heldout_combo": ("[run_search(queries_text=['tides'], k_text=2)]", [{"query": "tides", "k": 2}]),
}
# What a call in the training harness's form is under each variant (None: still a valid call).
TRAINING_FORM = {"training": None, "renamed": "unknown_tool", "args": "bad_arguments", "listargs": "bad_arguments",
                 "terse": None, "pythonic": "wrong_syntax", "fenced": "wrong_syntax", "llama_json": "wrong_syntax",
                 "answer_tag": None, "heldout_names": "unknown_tool", "heldout_args": "bad_arguments",
                 "heldout_final": None, "heldout_combo": "wrong_syntax"}


def test_every_builtin_variant_has_a_round_trip_case():
    assert set(ROUND_TRIPS) == set(BUILTIN_VARIANTS) == set(TRAINING_FORM)


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_a_call_in_the_variant_reaches_the_real_tool_with_the_right_arguments(name):
    harness = BUILTIN_VARIANTS[name]
    env = reskin(make_env(), harness)
    text, expected = ROUND_TRIPS[name]
    parsed = parse_tool_calls(text, env.tools, syntax=harness.syntax)
    assert parsed.errors == [] and len(parsed.calls) == 1
    RECEIVED.clear()
    outcomes = execute_calls(parsed, env.tools)
    assert RECEIVED == [("search", arguments) for arguments in expected]
    assert outcomes[0].error is None
    assert outcomes[0].content == "\n\n".join(f"results for {a['query']}" for a in expected)


@pytest.mark.parametrize("name", list(TRAINING_FORM))
def test_a_training_form_call_under_a_variant_is_a_format_error(name):
    harness = BUILTIN_VARIANTS[name]
    env = reskin(make_env(), harness)
    parsed = parse_tool_calls(TRAINING_CALL, env.tools, syntax=harness.syntax)
    if TRAINING_FORM[name] is None:
        assert [c.arguments for c in parsed.calls] == [{"query": "tides", "k": 2}] and parsed.errors == []
        return
    assert parsed.calls == [] and [e.kind for e in parsed.events] == [TRAINING_FORM[name]]
    assert TRAINING_FORM[name] in FORMAT_KINDS and parsed.needs_response  # answered with a tool message


def test_a_hermes_call_under_a_pythonic_harness_says_the_expected_form():
    env = reskin(make_env(), BUILTIN_VARIANTS["pythonic"])
    parsed = parse_tool_calls("Let me look.\n" + TRAINING_CALL + '\n[calculator(expression="6*7")]', env.tools,
                              syntax="pythonic")
    assert [(a.id, type(a).__name__) for a in parsed.attempts] == [("call_0_0", "ParseError"),
                                                                   ("call_0_1", "ParsedCall")]
    assert parsed.errors[0].message == ("Error: a <tool_call> block is not how tools are called here. "
                                        "Call tools as [search(argument=value, ...)].")


@pytest.mark.parametrize(("syntax", "text", "kind"), [
    ("pythonic", "[search('tides')]", "bad_json"),  # positional argument
    ("pythonic", "[search(query=open('x'))]", "bad_json"),  # not a literal: never evaluated
    ("fenced_code", "```tool_code\nx = 1\n```", "bad_json"),
    ("hermes", '{"name": "search", "parameters": {"query": "a"}}', "wrong_syntax"),
    ("llama3_json", "```tool_code\nsearch(query='a')\n```", "wrong_syntax"),
    ("pythonic", 'search(query="a")', "plain_text_call"),  # soft, as without a harness
])
def test_malformed_calls_per_syntax(syntax, text, kind):
    assert [e.kind for e in parse_tool_calls(text, [search, calculator], syntax=syntax).events] == [kind]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("syntax", ["pythonic", "fenced_code", "llama3_json", "hermes"])
@pytest.mark.parametrize("piece", ["[search(", "[a(]", "```tool_code\n", "<tool_call>", "[", "search(query="])
def test_strict_parsing_of_pathological_text_is_fast(syntax, piece):
    result = parse_tool_calls(piece * 5_000, [search, calculator], syntax=syntax)
    assert len(result.events) == len(result.errors)


def test_the_training_harness_is_the_identity():
    base = make_env()
    env = reskin(base, BUILTIN_VARIANTS["training"])
    assert env.tools == base.tools and env.check_answer is base.check_answer
    assert env.eval_dataset["prompt"] == base.eval_dataset["prompt"] and env.system_prompt == SYSTEM


def test_prompts_show_the_variant():
    combo = reskin(make_env(), BUILTIN_VARIANTS["heldout_combo"]).eval_dataset[0]["prompt"][0]["content"]
    assert combo.startswith('Use the run_search tool or the run_calculator. Give the final answer as a last line '
                            '"Final answer: N".\n\n# Tools\n')
    assert '"name": "run_search"' in combo and '"queries_text": {"type": "array"' in combo
    assert combo.endswith('reply with a Python list of calls with keyword arguments, for example:\n'
                          '[run_search(queries_text=["..."])]')
    terse = reskin(make_env(), BUILTIN_VARIANTS["terse"])
    assert terse.tools[0].__doc__.startswith("Search the collection.\n\nArgs:")


def test_the_answer_format_is_graded_strictly():
    env = reskin(make_env(), BUILTIN_VARIANTS["heldout_final"])
    assert env.check_answer("So:\nFinal answer: 42", "42") is True
    assert env.check_answer("Final answer: 41", "42") is False
    assert env.check_answer("\\boxed{42}", "42") is False  # the training form is a miss
    assert env.check_answer("Final answer: 42", None) is None  # ungradable stays ungraded
    tagged = reskin(make_env(), BUILTIN_VARIANTS["answer_tag"])
    assert tagged.check_answer("<answer>42</answer>", "42") is True
    assert "<answer>N</answer>" in tagged.system_prompt


@pytest.mark.parametrize(("variant", "message"), [
    (Harness("clash", tool_names={"search": "calculator"}),
     "harness variant 'clash': tools 'search' and 'calculator' would both be named 'calculator'"),
    (Harness("clash2", tool_name_template="tool"), "harness variant 'clash2': tools 'search' and 'calculator' would"),
    (Harness("ghost", tool_names={"browse": "b"}), "harness variant 'ghost': tool_names: no tool named 'browse'"),
    (Harness("ghostarg", argument_names={"search": {"q": "x"}}),
     "harness variant 'ghostarg': argument_names.search: no argument 'q'"),
    (Harness("argclash", argument_names={"search": {"k": "query"}}),
     "harness variant 'argclash': arguments of tool 'search' 'query' and 'k' would both be named 'query'"),
    (Harness("intlist", list_arguments={"search": {"k": "each"}}),
     "harness variant 'intlist': list_arguments.search.k: only a str argument"),
    (Harness("kw", tool_names={"search": "class"}), "harness variant 'kw': tool 'search' would be shown as 'class'"),
])
def test_bad_variants_name_themselves(variant, message):
    with pytest.raises(InputError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        reskin(make_env(), variant)


def test_variant_fields_are_checked_when_made():
    with pytest.raises(InputError, match="harness variant 'x': syntax: expected one of"):
        Harness("x", syntax="xml")
    with pytest.raises(InputError, match=r"tool_name_template: unknown placeholder\(s\) \['tool'\]"):
        Harness("y", tool_name_template="{tool}_x")


def test_user_variants_from_yaml_and_json(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("variants:\n  - name: google\n    tool_names: {search: google_search_tool}\n"
                    "    list_arguments: {search: {query: join}}\n    separator: ' OR '\n  - name: py\n"
                    "    syntax: pythonic\n")
    google, py = resolve_variants(f"renamed,{path}")[1:]
    env = reskin(make_env(), google)
    RECEIVED.clear()
    parsed = parse_tool_calls(HERMES.format(name="google_search_tool", arguments='{"queries": ["a", "b"]}'), env.tools)
    execute_calls(parsed, env.tools)
    assert RECEIVED == [("search", {"query": "a OR b", "k": 5})] and py.syntax == "pythonic"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "a"}, {"name": "b", "colour": "red"}]))
    with pytest.raises(InputError, match=r"bad.json: variant 2: unknown field\(s\) \['colour'\]"):
        load_variant_file(bad)
    bad.write_text(json.dumps({"name": "c", "tool_names": {"search": 3}}))
    with pytest.raises(InputError, match="bad.json: field 'tool_names': expected a mapping of strings, got"):
        load_variant_file(bad)
    with pytest.raises(InputError, match="harness variant 'renamed' is given twice"):
        resolve_variants("renamed,renamed")


def test_the_loop_parses_the_variant_and_renders_its_tool_list():
    tokenizer = build_byte_tokenizer()
    env = reskin(make_env(), BUILTIN_VARIANTS["pythonic"])
    scripts = {"alpha": [TRAINING_CALL, '[search(query="tides")]', "\\boxed{42}"], "beta": ["\\boxed{41}"]}
    trajectories = rollout_split(env, ScriptedBackend(tokenizer, scripts), tokenizer, RolloutConfig(max_turns=4))
    alpha, beta = trajectories
    prompt = tokenizer.apply_chat_template(env.eval_dataset[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert "<tools>" in prompt and alpha.turns[0].context_tokens == count_tokens(prompt)  # no template tool list
    assert [c.error for t in alpha.turns for c in t.tool_calls] == ["wrong_syntax", None]
    assert alpha.messages[3]["content"].startswith("Error: a <tool_call> block is not how tools are called here.")
    assert alpha.correct is True and beta.correct is False and alpha.metadata["harness"] == {
        "name": "pythonic", "syntax": "pythonic"}
    measured = measures(trajectories, _cost(0.001))
    assert measured["call_error_rate"] == 0.5 and measured["format_collapse_rate"] == 0.5
    assert measured["accuracy"] == 0.5 and measured["turns_mean"] == 2.0


def _cost(gamma: float):
    from pte_rl.pricing.cost import CostModel

    return CostModel(gamma=gamma)


def _trajectory(task: str, correct: bool, decode: list[int], errors: tuple = (), harness: str = "training"):
    turns = [Turn(context_tokens=100 + 10 * i, decode_tokens=d) for i, d in enumerate(decode)]
    turns[0].tool_calls = [ToolCall("search", {}, error=e) for e in errors]
    return Trajectory(turns=turns, task_id=task, correct=correct, metadata={"harness": {"name": harness}},
                      messages=[{"role": "user", "content": "q"}] + [
                          {"role": "assistant", "content": "a"} for _ in decode])


def test_compare_by_hand():
    reference = [_trajectory("a", True, [10]), _trajectory("b", True, [20]), _trajectory("c", False, [5])]
    variant = [_trajectory("a", True, [10, 30], ("unknown_tool", None), "renamed"),
               _trajectory("b", False, [40], ("max_turns",), "renamed"), _trajectory("c", True, [5], (), "renamed")]
    cost = _cost(0.01)
    ptes = {k: [pte(t, 0.01).total for t in v] for k, v in (("ref", reference), ("var", variant))}
    result = compare({"training": reference, "renamed": variant}, cost, "training")
    ref_row, row = result["rows"]
    assert row["pte_mean"] == pytest.approx(sum(ptes["var"]) / 3)
    assert row["delta_pte_pct"] == pytest.approx(100 * (sum(ptes["var"]) / sum(ptes["ref"]) - 1))
    assert row["pte_per_solved"] == pytest.approx(sum(ptes["var"]) / 2)
    assert row["delta_pte_per_solved"] == pytest.approx(sum(ptes["var"]) / 2 - sum(ptes["ref"]) / 2)
    assert row["paired_tasks"] == 1 and row["paired_delta_pte"] == pytest.approx(ptes["var"][0] - ptes["ref"][0])
    assert row["paired_delta_generated"] == 30
    assert row["call_error_rate"] == 0.5  # the unrun max_turns call is no attempt
    assert row["generated_mean"] == pytest.approx(85 / 3) and ref_row["delta_generated"] == 0


def test_compare_logs_offline(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_trajectories(a, [_trajectory("a", True, [10])])
    collapsed = _trajectory("a", True, [10, 30], ("wrong_syntax",), "pythonic")
    collapsed.messages[1:2] = [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "search", "arguments": TRAINING_CALL}}]},
        {"role": "tool", "tool_call_id": "c0", "name": "search", "content": "Error: ..."}]
    collapsed.events = [Event(0, "wrong_syntax", "hermes call", TRAINING_CALL, "search")]
    write_trajectories(b, [collapsed])
    assert harness_main(["--compare", str(a), str(b), "--gamma", "0.01", "--out", str(tmp_path / "cmp")]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[2].startswith("| training | 1 | 1.000 |")
    assert table.splitlines()[3].startswith("| pythonic | 1 | 1.000 |") and "| 1.000 | 1.000 |" in table
    result = json.loads((tmp_path / "cmp" / "harness.json").read_text())
    assert result["reference"] == "training" and (tmp_path / "cmp" / "harness.png").stat().st_size > 0
    assert harness_main(["--compare", str(a), "--gamma", "0.01"]) == 2
    assert "expected at least two logs" in capsys.readouterr().err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model"), build_byte_tokenizer())


@pytest.fixture
def _single_thread():
    yield from one_torch_thread()


@pytest.mark.usefixtures("_single_thread")
def test_probe_on_a_local_model_dir(model_dir, tmp_path, capsys):
    out = tmp_path / "probe"
    argv = [str(model_dir), "--env", "arith", "--env.options.n_train", "10", "--env.options.n_eval", "3",
            "--variants", "pythonic,renamed", "--n", "2", "--max-completion-length", "24", "--device", "cpu",
            "--temperature", "1.0", "--out", str(out)]
    assert harness_main(argv) == 0
    table = capsys.readouterr().out
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["training", "pythonic", "renamed"]
    result = json.loads((out / "harness.json").read_text())
    for row in result["rows"]:
        trajectories = read_trajectories(out / row["harness"] / "trajectories.jsonl")
        assert len(trajectories) == row["n"] == 2
        assert all(t.metadata["harness"]["name"] == row["harness"] for t in trajectories)
        assert row["generated_mean"] == sum(t.decode_tokens for t in trajectories) / 2
    assert (out / "harness.md").read_text() == table and (out / "harness.png").is_file()


@pytest.mark.usefixtures("_single_thread")
def test_probe_on_the_tiny_policy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PTE_RL_CACHE", str(tmp_path / "cache"))
    argv = ["tiny", "--env", "arith", "--variants", "renamed", "--n", "4", "--device", "cpu", "--out",
            str(tmp_path / "probe")]
    assert harness_main(argv) == 0
    rows = json.loads((tmp_path / "probe" / "harness.json").read_text())["rows"]
    assert [r["harness"] for r in rows] == ["training", "renamed"] and all(r["n"] == 4 for r in rows)
    renamed = read_trajectories(tmp_path / "probe" / "renamed" / "trajectories.jsonl")
    assert all(s["function"]["name"] in ("calculator_tool", "python_tool") for s in renamed[0].tools)


@pytest.mark.parametrize(("argv", "message"), [
    (["--variants", "nope"], "unknown harness variant 'nope'"),
    (["--variants", "CLASH"], "harness variant 'clash': tools 'calculator' and 'python' would both be named"),
])
def test_probe_bad_input_exits_2(model_dir, tmp_path, capsys, argv, message):
    clash = tmp_path / "clash.yaml"
    clash.write_text("name: clash\ntool_name_template: run\n")
    argv = [a.replace("CLASH", str(clash)) for a in argv]
    out = tmp_path / "probe"
    assert harness_main([str(model_dir), "--env", "arith", "--env.options.n_eval", "3", *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_a_reskinned_environment_pickles_as_its_base_and_harness():
    import pickle

    from pte_rl.rollout.env import load_environment

    env = reskin(load_environment("arith", n_train=10, n_eval=3), BUILTIN_VARIANTS["heldout_combo"])
    copy = pickle.loads(pickle.dumps(env))
    assert copy.harness == env.harness and [t.__name__ for t in copy.tools] == ["run_calculator", "run_python"]
    assert copy.eval_dataset["prompt"] == env.eval_dataset["prompt"]
    parsed = parse_tool_calls('[run_calculator(expressions_text=["6*7", "2+3"])]', copy.tools, syntax="pythonic")
    assert [o.content for o in execute_calls(parsed, copy.tools)] == ["42\n\n5"]

"""Inefficiency-pattern detectors on trajectories built for them, batch rates by hand, the CLI."""

from __future__ import annotations

import json
import math

import pytest

from pte_rl.cli import main
from pte_rl.errors import InputError
from pte_rl.patterns import (
    PATTERNS,
    PatternConfig,
    canonical_arguments,
    confirmatory,
    detect,
    format_collapse,
    front_loading,
    front_loading_share,
    lack_of_tool_priors,
    overlong_responses,
    pattern_rates,
    repeated_calls,
    tool_mixing,
)
from pte_rl.pricing.jsonl import write_trajectories
from pte_rl.pricing.trajectory import Event, ToolCall, Trajectory, Turn

PYTHON = {
    "type": "function",
    "function": {
        "name": "python",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


def build(*turns, ground_truth=None, answer=None, tools=None, events=(), id="t") -> Trajectory:
    """turns: (assistant text, [ToolCall], context_tokens, decode_tokens); messages follow them."""
    messages: list[dict] = [{"role": "user", "content": "question"}]
    records = []
    for n, (text, calls, context, decode) in enumerate(turns):
        message: dict = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"c{n}_{k}",
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments),
                    },
                }
                for k, c in enumerate(calls)
            ]
        messages.append(message)
        for k, call in enumerate(calls):
            messages.append({"role": "tool", "tool_call_id": f"c{n}_{k}", "content": call.output or ""})
        records.append(Turn(context_tokens=context, decode_tokens=decode, tool_calls=list(calls)))
    return Trajectory(
        turns=records,
        id=id,
        ground_truth=ground_truth,
        answer=answer,
        messages=messages,
        tools=tools,
        events=list(events),
    )


def py(code: str = "print(6*7)", output: str = "42", **kw) -> ToolCall:
    return ToolCall("python", {"code": code}, output=output, **kw)


def search(query: str = "q", output: str = "results", **kw) -> ToolCall:
    return ToolCall("search", {"query": query}, output=output, **kw)


# ---------------------------------------------------------------- confirmatory


def test_confirmatory_answer_before_the_call():
    traj = build(
        ("<think>6 times 7 is 42.</think> Let me verify.", [py()], 100, 50),
        ("The answer is \\boxed{42}.", [], 160, 10),
        ground_truth="42",
    )
    [flag] = confirmatory(traj)
    assert (flag.pattern, flag.turn, flag.kind) == ("confirmatory", 0, "final answer")
    assert "6 times 7 is 42." in flag.evidence and "first python call (turn 0)" in flag.evidence


def test_confirmatory_number_tokens_are_whole():
    text = "Candidates: 42, 142, 4.2 and x4; let me compute."
    assert confirmatory(build((text, [py()], 100, 50), ("\\boxed{4}", [], 160, 5), ground_truth="4")) == []
    assert confirmatory(build(("It is 1,000 I think", [py()], 100, 50), ("1000", [], 160, 5)))[0].turn == 0
    assert confirmatory(build(("so \\frac{3}{4} probably", [py()], 100, 50), ("\\boxed{0.75}", [], 160, 5)))
    # A binary minus is no negative sign; "= -4" is.
    assert confirmatory(build(("look at x-4 here", [py()], 100, 5), ("-4", [], 160, 5))) == []
    assert confirmatory(build(("so x = -4 here", [py()], 100, 5), ("-4", [], 160, 5)))
    # A formula matches character for character, whatever the spacing.
    formula = build(
        ("x = \\frac{ \\sqrt{3} }{3}?", [py()], 100, 5), ("\\boxed{\\frac{\\sqrt{3}}{3}}", [], 160, 5)
    )
    assert "\\frac{ \\sqrt{3} }{3}" in confirmatory(formula)[0].evidence
    assert confirmatory(build(("Parisian food", [py()], 100, 5), ("Paris", [], 160, 5))) == []


def test_confirmatory_negative_cases():
    # The answer only appears after the call.
    after = build(
        ("Let me compute.", [py()], 100, 20), ("So it is \\boxed{42}.", [], 150, 10), ground_truth="42"
    )
    assert confirmatory(after) == []
    # No computation tool: search does not confirm.
    only_search = build(("Maybe 42?", [search()], 100, 20), ("\\boxed{42}", [], 150, 5), ground_truth="42")
    assert confirmatory(only_search) == []
    # The answer in the same turn but after the <tool_call> text does not count.
    raw = '<tool_call>\n{"name": "python", "arguments": {"code": "print(42)"}}\n</tool_call>'
    assert confirmatory(build((raw, [py()], 100, 20), ("done", [], 150, 5), ground_truth="42")) == []
    # A configurable tool set: with calculator as the only compute tool, python is not one.
    early = build(("It is 42.", [py()], 100, 20), ("\\boxed{42}", [], 150, 5))
    assert confirmatory(early, PatternConfig(compute_tools=("calculator",))) == []


def test_confirmatory_ground_truth_and_words_in_a_later_turn():
    traj = build(
        ("Searching.", [search("award 2010")], 100, 20),
        ("The award went to Michio Sugeno. Check with code.", [py("print('x')", "x")], 300, 30),
        ("Final: a guess", [], 400, 5),
        ground_truth=["Michio Sugeno"],
    )
    [flag] = confirmatory(traj)
    assert flag.turn == 1 and flag.kind == "ground truth" and "Michio Sugeno" in flag.evidence


# ---------------------------------------------------------------- tool mixing


def test_tool_mixing():
    mixed = build(
        ("", [search()], 100, 10),
        ("", [ToolCall("visit", {"url": "u"}, output="page")], 200, 10),
        ("", [py()], 300, 10),
        ("\\boxed{1}", [], 400, 5),
    )
    [flag] = tool_mixing(mixed)
    assert flag.turn == 2 and flag.value == 2.0 and "web: search (turn 0)" in flag.evidence
    assert "compute: python (turn 2)" in flag.evidence
    web_only = build(("", [search()], 100, 10), ("", [ToolCall("visit", {"url": "u"})], 200, 10))
    assert tool_mixing(web_only) == []
    one_set = PatternConfig(toolsets={"search": "all", "visit": "all", "python": "all"})
    assert tool_mixing(mixed, one_set) == []
    assert PatternConfig(toolsets={"all": ["search", "visit", "python"]}).toolsets == one_set.toolsets
    assert pattern_rates([mixed], None)["patterns/tool_mixing_rate"] == 1.0
    assert (
        pattern_rates([mixed], None, toolsets={"all": ["search", "visit", "python"]})[
            "patterns/tool_mixing_rate"
        ]
        == 0
    )
    with pytest.raises(ValueError, match="two sets"):
        PatternConfig(toolsets={"web": ["search"], "other": ["search"]})
    # A call that names no given tool does not count as using a toolset.
    unknown = build(
        ("", [search()], 100, 10), ("", [ToolCall("pythn", {"code": "1"}, error="unknown_tool")], 200, 10)
    )
    assert tool_mixing(unknown) == []
    assert tool_mixing(build(("", [search(), ToolCall("pythn", {})], 100, 10), tools=[SEARCH, PYTHON])) == []


# ---------------------------------------------------------------- lack of tool priors


def test_lack_of_tool_priors():
    traj = build(
        ("", [py(output="", error="timeout")], 100, 10),
        ("", [search(output="")], 200, 10),
        (
            "",
            [py("1/0", "Traceback (most recent call last):\n  ...\nZeroDivisionError: division by zero")],
            300,
            10,
        ),
        ("", [py("print(1)", "1")], 400, 10),
        ("\\boxed{1}", [], 500, 5),
        events=[Event(turn=3, kind="tool_error", text="exception: killed by the sandbox", tool="python")],
    )
    flags = lack_of_tool_priors(traj)
    assert [(f.turn, f.kind) for f in flags] == [
        (3, "tool_error"),
        (0, "timeout"),
        (1, "empty_output"),
        (2, "tool_error"),
    ]
    assert "ZeroDivisionError" in flags[3].evidence
    assert lack_of_tool_priors(build(("", [py()], 100, 10), ("\\boxed{42}", [], 150, 5))) == []
    assert [f.kind for f in lack_of_tool_priors(build(("", [py(error="rate_limited")], 100, 10)))] == [
        "rate_limited"
    ]
    assert lack_of_tool_priors(build(("", [py(error="bad_arguments")], 100, 10))) == []  # a format failure


# ---------------------------------------------------------------- format collapse


def test_format_collapse_from_events_and_calls():
    events = [
        Event(0, kind, text=f"{kind} text")
        for kind in ("bad_json", "unknown_tool", "bad_arguments", "code_block", "plain_text_call")
    ]
    events.append(Event(0, "max_turns"))
    flags = format_collapse(build(("x", [], 10, 1), events=events))
    assert [f.kind for f in flags] == [
        "bad_json",
        "unknown_tool",
        "bad_arguments",
        "code_block",
        "plain_text_call",
    ]
    calls = build(
        (
            "",
            [
                ToolCall("pythn", {"code": "1"}),
                ToolCall("python", {"source": "1"}),
                ToolCall("python", '{"code": "print(1'),
                py(),
            ],
            100,
            10,
        ),
        tools=[PYTHON],
    )
    flags = format_collapse(calls)
    assert [f.kind for f in flags] == ["unknown_tool", "bad_arguments", "bad_json"]
    assert "'pythn' is not a given tool (python)" in flags[0].evidence
    assert "'code' is a required property" in flags[1].evidence


def test_format_collapse_from_raw_text():
    code_block = build(("Compute it:\n```python\nprint(2**10)\n```\nSo 1024.", [], 100, 30), tools=[PYTHON])
    [flag] = format_collapse(code_block)
    assert (flag.turn, flag.kind) == (0, "code_block") and "print(2**10)" in flag.evidence
    assert (
        format_collapse(build(("```python\nprint(1)\n```", [], 100, 30), tools=[SEARCH])) == []
    )  # no code tool
    assert (
        format_collapse(build(("```python\nprint(1)\n```", [], 100, 30))) == []
    )  # plain chat: no tools at all
    fenced_json = build(
        ('```json\n{"name": "search", "arguments": {"query": "x"}}\n```', [], 100, 30), tools=[SEARCH]
    )
    assert [f.kind for f in format_collapse(fenced_json)] == ["code_block"]
    plain = build(('I will run python(code="print(1)") now', [], 100, 30), tools=[PYTHON])
    assert [f.kind for f in format_collapse(plain)] == ["plain_text_call"]
    bare_json = build(('{"name": "python", "arguments": {"code": "1"}}', [], 100, 30), tools=[PYTHON])
    assert [f.kind for f in format_collapse(bare_json)] == ["plain_text_call"]
    prose = build(("Python (the language) is fine; the answer is \\boxed{3}.", [], 100, 30), tools=[PYTHON])
    assert format_collapse(prose) == []


def test_format_collapse_messy_turns():
    # Reasoning that drafts a broken call, then two calls in one turn, the second cut off mid-JSON.
    text = (
        '<think>\nmaybe <tool_call>{"name": "python", "arguments": {"code": \n</think>\n\nI will compute.\n'
        '<tool_call>\n{"name": "python", "arguments": {"code": "print(2**10)"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "python", "arguments": {"code": "print(2**'
    )
    traj = build((text, [py("print(2**10)", "1024")], 100, 80), ("\\boxed{1024}", [], 200, 5), tools=[PYTHON])
    [flag] = format_collapse(traj)
    assert (flag.turn, flag.kind) == (0, "bad_json") and "print(2**" in flag.evidence
    # An event and the text that caused it are one finding.
    traj.events.append(Event(0, "bad_json", text="truncated call"))
    assert [(f.turn, f.kind) for f in format_collapse(traj)] == [(0, "bad_json")]
    # Well-formed calls in the text, parsed into tool_calls: nothing to flag.
    good = '<tool_call>\n{"name": "search", "arguments": {"query": "pte"}}\n</tool_call>'
    assert format_collapse(build((good, [search("pte")], 100, 20), tools=[SEARCH, PYTHON])) == []
    unknown = '<tool_call>\n{"name": "browse", "arguments": {"url": "x"}}\n</tool_call>'
    assert [f.kind for f in format_collapse(build((unknown, [], 100, 20), tools=[SEARCH]))] == [
        "unknown_tool"
    ]


# ---------------------------------------------------------------- beyond the paper


def test_repeated_calls():
    traj = build(
        ("", [ToolCall("search", {"query": "a", "k": 3}), ToolCall("search", {"query": "b"})], 100, 10),
        ("", [ToolCall("search", '{"k": 3, "query": "a"}')], 200, 10),
        ("", [search("b")], 300, 10),
    )
    flags = repeated_calls(traj)
    assert [f.turn for f in flags] == [1, 2]
    assert "first called at turn 0" in flags[0].evidence
    assert (
        canonical_arguments({"b": 1, "a": [1, 2]})
        == canonical_arguments('{"a": [1,2], "b": 1}')
        == '{"a":[1,2],"b":1}'
    )
    assert repeated_calls(build(("", [search("a"), ToolCall("visit", {"query": "a"})], 100, 10))) == []


def test_overlong_responses():
    traj = build(
        ("", [ToolCall("visit", {"url": "u"}, response_tokens=3000), search()], 100, 10),
        ("", [ToolCall("visit", {"url": "v"}, response_tokens=2048)], 3200, 10),
        events=[Event(1, "truncated_output", detail="cut to 2048 tokens")],
    )
    flags = overlong_responses(traj)
    assert [(f.turn, f.value) for f in flags] == [(0, 3000.0), (1, None)]
    assert flags[1].evidence == "cut to 2048 tokens"
    assert len(overlong_responses(traj, PatternConfig(overlong_tokens=1000))) == 3
    cut = build(("", [ToolCall("visit", {"url": "u"}, output="...", error="truncated_output")], 100, 10))
    assert [f.kind for f in overlong_responses(cut)] == ["truncated_output"] and lack_of_tool_priors(
        cut
    ) == []


def test_front_loading():
    heavy = build(("long reasoning", [py()], 100, 900), ("\\boxed{42}", [], 1100, 100))
    assert front_loading_share(heavy) == (0.9, 900, 0)
    [flag] = front_loading(heavy)
    assert flag.value == pytest.approx(0.9) and "900 of 1000" in flag.evidence
    assert front_loading(build(("", [py()], 100, 100), ("\\boxed{42}", [], 300, 900))) == []  # share 0.1
    assert front_loading(build(("", [py()], 100, 90), ("x", [], 300, 10))) == []  # 0.9, but 90 < 128 tokens
    assert front_loading_share(build(("no calls", [], 100, 50))) is None
    later = build(("plan", [], 100, 300), ("", [py()], 500, 300), ("x", [], 900, 100))
    assert front_loading_share(later) == (pytest.approx(6 / 7), 600, 1)


# ---------------------------------------------------------------- batch rates and multipliers


def _batch() -> list[Trajectory]:
    # gamma 0.1: PTE = sum(context + 0.1 * context * decode) with decode 10 -> 2 * context per turn.
    repeated = build(
        ("", [py("print(1)", "1")], 100, 10), ("", [py("print(1)", "1")], 200, 10), id="rep"
    )  # 600
    overlong = build(
        ("", [ToolCall("search", {"query": "q"}, output="x", response_tokens=3000)], 100, 10),
        ("", [], 3200, 10),
        id="long",
    )  # 200 + 6400 = 6600
    free_a = build(("It is 5.", [], 100, 10), id="a")  # 200
    free_b = build(("It is 6.", [], 300, 10), id="b")  # 600
    return [repeated, overlong, free_a, free_b]


def test_pattern_rates_by_hand():
    batch = _batch()
    assert [sorted({f.pattern for f in detect(t)}) for t in batch] == [
        ["repeated_calls"],
        ["overlong_responses"],
        [],
        [],
    ]
    metrics = pattern_rates(batch, 0.1)
    assert metrics["patterns/repeated_calls_rate"] == 0.25
    assert metrics["patterns/overlong_responses_rate"] == 0.25
    assert metrics["patterns/repeated_calls_cost_multiplier"] == pytest.approx(
        600 / 400
    )  # free mean (200+600)/2
    assert metrics["patterns/overlong_responses_cost_multiplier"] == pytest.approx(6600 / 400)
    assert metrics["patterns/confirmatory_rate"] == 0.0
    assert math.isnan(metrics["patterns/confirmatory_cost_multiplier"])  # nobody flagged: no comparison
    assert metrics["patterns/any_rate"] == 0.5
    assert metrics["patterns/front_loading_share_mean"] == pytest.approx(0.5)  # 10/20 in both callers
    assert set(metrics) == {f"patterns/{p}_{s}" for p in PATTERNS for s in ("rate", "cost_multiplier")} | {
        "patterns/any_rate",
        "patterns/front_loading_share_mean",
    }


def test_pattern_rates_edges():
    batch = _batch()
    no_free = pattern_rates(batch[:2], 0.1)
    assert no_free["patterns/repeated_calls_rate"] == 0.5
    assert math.isnan(no_free["patterns/repeated_calls_cost_multiplier"])  # no pattern-free side
    rates_only = pattern_rates(batch, None)
    assert (
        "patterns/repeated_calls_cost_multiplier" not in rates_only and rates_only["patterns/any_rate"] == 0.5
    )
    empty = pattern_rates([], 0.1)
    assert math.isnan(empty["patterns/any_rate"]) and math.isnan(empty["patterns/repeated_calls_rate"])
    only_two = PatternConfig(enabled=("confirmatory", "overlong_responses"))
    narrowed = pattern_rates(
        batch, 0.1, config=only_two
    )  # "rep" is pattern-free now: free mean (600+200+600)/3
    assert narrowed["patterns/overlong_responses_cost_multiplier"] == pytest.approx(6600 / (1400 / 3))
    with pytest.raises(InputError, match="enabled"):
        PatternConfig(enabled=("speed",))
    with pytest.raises(ValueError, match="flags"):
        pattern_rates(batch, 0.1, flags=[[]])


# ---------------------------------------------------------------- CLI


def test_cli_json_and_table(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    write_trajectories(path, _batch())
    assert main(["patterns", str(path), "--json", "--gamma", "0.1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in out["trajectories"]] == ["rep", "long", "a", "b"]
    assert out["trajectories"][0]["flags"][0]["pattern"] == "repeated_calls"
    assert out["trajectories"][1]["flags"][0]["value"] == 3000.0
    assert out["metrics"]["patterns/overlong_responses_cost_multiplier"] == pytest.approx(16.5)
    assert out["metrics"]["patterns/confirmatory_cost_multiplier"] is None
    assert main(["patterns", str(path), "--overlong-tokens", "5000"]) == 0
    table = capsys.readouterr().out
    assert "repeated_calls       turn 1" in table and "long: no pattern" in table
    assert "(no gamma: give --gamma G for cost multipliers)" in table


def test_cli_bad_input(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "x"}]}\n{not json\n')
    assert main(["patterns", str(path)]) == 2
    assert f"{path}:2" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    write_trajectories(good, _batch())
    assert main(["patterns", str(good), "--toolsets", "web"]) == 2
    assert "expected SET=tool" in capsys.readouterr().err
    assert main(["patterns", str(good), "--overlong-tokens", "-1"]) == 2
    assert main(["patterns", str(tmp_path / "missing.jsonl")]) == 2


def test_cli_counts_tokens_with_a_tokenizer(tmp_path, capsys, tiny_tokenizer_dir):
    # A user's log without `usage`: turns are counted through the chat template.
    record = {
        "id": "u1",
        "tools": [PYTHON],
        "messages": [
            {"role": "user", "content": "what is 6 * 7"},
            {
                "role": "assistant",
                "content": "the answer is 42 , code to check",
                "tool_calls": [
                    {
                        "id": "c0",
                        "type": "function",
                        "function": {"name": "python", "arguments": '{"code": "print(6*7)"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c0", "content": "42"},
            {"role": "assistant", "content": "the answer is 42"},
        ],
    }
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert main(["patterns", str(path), "--json", "--tokenizer", str(tiny_tokenizer_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["pattern"] for f in out["trajectories"][0]["flags"]] == ["confirmatory"]
    assert main(["patterns", str(path)]) == 2  # no usage and no tokenizer: a clear error
    assert "usage" in capsys.readouterr().err

"""The tool-call parser: Hermes/Qwen and Llama-3.1 calls, every failure kind, and fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pte_rl.pricing.trajectory import EVENT_KINDS
from pte_rl.tools import ParseResult, Toolset, parse_tool_calls, strip_think


def python(code: str) -> str:
    """Run code.

    Args:
        code: The source.
    """
    return code


def search(query: str, k: int = 5) -> str:
    """Search.

    Args:
        query: Keywords.
        k: Results.
    """
    return query


TOOLS = Toolset([python, search])


def call(name: str, arguments, key: str = "arguments") -> str:
    return f"<tool_call>\n{json.dumps({'name': name, key: arguments})}\n</tool_call>"


def kinds(result: ParseResult) -> list[str]:
    return [e.kind for e in result.events]


def test_one_hermes_call():
    text = "Let me compute.\n" + call("python", {"code": "print(6 * 7)"})
    result = parse_tool_calls(text, TOOLS, turn=3)
    assert [(c.name, c.arguments, c.id) for c in result.calls] == [
        ("python", {"code": "print(6 * 7)"}, "call_3_0")
    ]
    assert result.calls[0].raw == text[len("Let me compute.\n") :]
    assert result.errors == [] and result.events == [] and result.needs_response


def test_several_calls_whitespace_and_string_arguments():
    text = (
        call("search", {"query": "cats", "k": 2})
        + '\n\n<tool_call>   {"name": "python",\n "arguments": "{\\"code\\": \\"print(1)\\"}"}  </tool_call>'
        + '<tool_call>{"name": "python", "arguments": {"code": "a = 1\nprint(a)"}}</tool_call>'  # raw newline
    )
    result = parse_tool_calls(text, TOOLS)
    assert [c.arguments for c in result.calls] == [
        {"query": "cats", "k": 2},
        {"code": "print(1)"},
        {"code": "a = 1\nprint(a)"},
    ]
    assert [c.id for c in result.calls] == ["call_0_0", "call_0_1", "call_0_2"]


def test_think_is_removed_before_parsing():
    inner = call("python", {"code": "print(1)"})
    assert parse_tool_calls(f"<think>maybe {inner}</think>No call.", TOOLS).calls == []
    assert parse_tool_calls(f"thinking {inner}</think>answer", TOOLS).calls == []  # template opened <think>
    assert parse_tool_calls(f"<think>cut off {inner}", TOOLS).calls == []  # thought ran out of tokens
    assert len(parse_tool_calls(f"<think>plan</think>{inner}", TOOLS).calls) == 1
    assert strip_think("a<think>x</think>b<think>y</think>c<think>z") == "abc"


@pytest.mark.parametrize(
    ("text", "kind", "evidence"),
    [
        ('<tool_call>{"name": "python", "arguments": {"code": "pri', "bad_json", None),  # truncated
        ('<tool_call>{"name": "python" "arguments": {}}</tool_call>', "bad_json", None),  # missing comma
        ("<tool_call>{'name': 'python'}</tool_call>", "bad_json", None),  # Python, not JSON
        ('<tool_call>{"arguments": {}}</tool_call>', "bad_json", None),  # no name
        ('<tool_call>{"name": "python", "arguments": "{bad"}</tool_call>', "bad_json", None),
        ("<tool_call>  </tool_call>", "bad_json", None),
        ('{"name": "python", "arguments": {}}</tool_call>', "bad_json", None),  # closing tag only
        (call("shell", {"cmd": "ls"}), "unknown_tool", None),
        (call("python", {}), "bad_arguments", None),
        (call("python", {"code": 3}), "bad_arguments", None),
        (call("python", {"code": "x", "timeout": 1}), "bad_arguments", None),
        (call("python", ["x"]), "bad_arguments", None),
        ("Here:\n```python\nprint(2 ** 10)\n```\nDone.", "code_block", "```python\nprint(2 ** 10)\n```"),
        ('```json\n{"name": "search", "arguments": {"query": "x"}}\n```', "code_block", None),
        ('I will run python(code="print(1)") now.', "plain_text_call", 'python(code="print(1)") now.'),
        ("search('capital of France')", "plain_text_call", "search('capital of France')"),
    ],
)
def test_each_failure_is_an_error_message_and_an_event(text, kind, evidence):
    result = parse_tool_calls(text, TOOLS, turn=1)
    assert result.calls == []
    assert kinds(result) == [kind] and kind in EVENT_KINDS
    event, error = result.events[0], result.errors[0]
    assert error.kind == kind and error.message.startswith("Error:") and error.id == "call_1_0"
    assert event.turn == 1 and event.text == error.raw
    assert event.text in text
    if evidence is not None:
        assert event.text == evidence
    assert result.needs_response is (kind not in ("code_block", "plain_text_call"))


def test_messages_say_what_is_wrong():
    assert "Available tools: python, search" in parse_tool_calls(call("shell", {}), TOOLS).errors[0].message
    assert "'code' is a required property" in parse_tool_calls(call("python", {}), TOOLS).errors[0].message
    truncated = parse_tool_calls('<tool_call>{"name": "python", "arg', TOOLS).errors[0].message
    assert "not valid JSON" in truncated and "no closing </tool_call>" in truncated


def test_valid_and_invalid_calls_keep_text_order():
    text = call("python", {"code": "1"}) + call("nope", {}) + call("search", {"query": "q"})
    result = parse_tool_calls(text, TOOLS)
    assert [type(a).__name__ for a in result.attempts] == ["ParsedCall", "ParseError", "ParsedCall"]
    assert [a.id for a in result.attempts] == ["call_0_0", "call_0_1", "call_0_2"]


def test_unterminated_tag_followed_by_another_call():
    text = '<tool_call>{"name": "python"\n' + call("search", {"query": "q"})
    result = parse_tool_calls(text, TOOLS)
    assert kinds(result) == ["bad_json"] and [c.name for c in result.calls] == ["search"]


def test_complete_json_without_closing_tag_is_accepted():
    # stop strings often swallow "</tool_call>"
    result = parse_tool_calls('<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}\n', TOOLS)
    assert [c.arguments for c in result.calls] == [{"code": "print(1)"}] and result.events == []


def test_soft_failures_only_without_calls():
    text = "```python\nprint(1)\n```\n" + call("python", {"code": "print(1)"})
    assert parse_tool_calls(text, TOOLS).events == []
    no_code_tool = Toolset([search])
    assert parse_tool_calls("```python\nprint(1)\n```", no_code_tool).events == []
    assert parse_tool_calls("I used python (the language) to check.", TOOLS).events == []
    assert parse_tool_calls("```\nplain text block\n```", TOOLS).events == []


def test_soft_failures_are_capped_per_message():
    text = "```python\nprint(1)\n```\n" * 9 + "python(code='x')"
    assert kinds(parse_tool_calls(text, TOOLS)) == ["code_block"] * 5


def test_llama_calls():
    whole = json.dumps({"name": "search", "parameters": {"query": "llamas"}})
    assert [c.arguments for c in parse_tool_calls(whole, TOOLS).calls] == [{"query": "llamas"}]
    tagged = (
        "<|python_tag|>" + json.dumps({"name": "python", "parameters": {"code": "print(1)"}}) + "<|eom_id|>"
    )
    assert [c.name for c in parse_tool_calls(tagged, TOOLS).calls] == ["python"]
    two = whole + "; " + json.dumps({"name": "python", "parameters": {"code": "x"}})
    assert [c.name for c in parse_tool_calls(two, TOOLS).calls] == ["search", "python"]
    assert kinds(parse_tool_calls('<|python_tag|>{"name": "python", "parameters": {', TOOLS)) == ["bad_json"]
    assert kinds(parse_tool_calls('{"name": "search", "parameters": {"query": ', TOOLS)) == ["bad_json"]
    answer = parse_tool_calls('{"name": "Paris", "country": "France"}', TOOLS)  # a JSON answer, not a call
    assert answer.calls == [] and answer.events == [] and not answer.needs_response


def test_no_call_means_final():
    result = parse_tool_calls("The answer is \\boxed{42}.", TOOLS)
    assert result.calls == [] and result.errors == [] and not result.needs_response


@pytest.mark.parametrize("arguments", [{"code": "print('}')"}, {"code": "x = {'a': [1, 2]}\nprint(x)"}])
def test_every_cut_of_a_call_is_bad_json_until_the_json_is_complete(arguments):
    text = call("python", arguments)
    body_start = len("<tool_call>")
    json_end = text.rindex("}") + 1
    for cut in range(body_start + 1, len(text) + 1):
        result = parse_tool_calls(text[:cut], TOOLS)
        if cut < json_end:
            assert result.calls == [] and kinds(result) == ["bad_json"], cut
        else:
            assert [c.arguments for c in result.calls] == [arguments] and result.events == [], cut


def _check_invariants(result: ParseResult) -> None:
    assert len(result.events) == len(result.errors)
    assert all(e.kind in EVENT_KINDS for e in result.events)
    ids = [a.id for a in result.attempts]
    assert len(ids) == len(set(ids))
    for parsed in result.calls:
        assert TOOLS.validate(parsed.name, parsed.arguments) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_fuzz_arbitrary_text_never_raises(text):
    _check_invariants(parse_tool_calls(text, TOOLS))


_PIECES = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        "<think>",
        "</think>",
        "```",
        "```python\n",
        "{",
        "}",
        '"name"',
        ":",
        '"python"',
        '"arguments"',
        '"code"',
        ",",
        "\n",
        "python(",
        "code=",
        "<|python_tag|>",
        '"',
        "\\",
        "[",
        "]",
        "null",
        "search('",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=40))
def test_fuzz_protocol_fragments_never_raise(pieces):
    _check_invariants(parse_tool_calls("".join(pieces), TOOLS))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.data())
def test_fuzz_mutated_valid_calls_never_raise(code, data):
    text = call("python", {"code": code})
    cut = data.draw(st.integers(0, len(text)))
    insert_at = data.draw(st.integers(0, cut))
    noise = data.draw(st.text(max_size=10))
    mutated = text[:insert_at] + noise + text[insert_at:cut]
    _check_invariants(parse_tool_calls(mutated, TOOLS))
    assert [c.arguments for c in parse_tool_calls(text, TOOLS).calls] == [{"code": code}]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "piece",
    ["```", "```python\n", "<think>", "<tool_call>", "</tool_call>", "python(", "[", '{"name": ', " "],
)
def test_pathological_inputs_parse_in_linear_time(piece):
    # 20,000 repetitions (~200 KB): a quadratic scan would take minutes, the timeout fails it
    result = parse_tool_calls(piece * 20_000, TOOLS)
    _check_invariants(result)


@pytest.mark.parametrize("code", ["<think>", "</think>", "print('<think>')", "x = '</think>' + '<think>'"])
def test_think_tags_inside_a_call_are_its_data(code):
    text = "<think>which tool?</think>" + call("python", {"code": code})
    assert [c.arguments for c in parse_tool_calls(text, TOOLS).calls] == [{"code": code}]

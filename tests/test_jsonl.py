"""The JSONL interchange format: parsing, writing, token counting (usage and tokenizer), bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import count_tokens

from pte_rl.pricing.jsonl import (
    FormatError,
    TemplateCounter,
    iter_trajectories,
    parse_record,
    read_jsonl,
    read_trajectories,
    renderable,
    to_record,
    write_atomic,
    write_jsonl,
    write_trajectories,
)

PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "run code",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}
CALL = {"id": "c0", "type": "function", "function": {"name": "python", "arguments": '{"code": "print(6*7)"}'}}


def chat(usage: bool = True) -> dict:
    """A two-turn tool-using trajectory; with or without per-assistant usage."""
    first = {"role": "assistant", "content": "", "tool_calls": [CALL]}
    final = {"role": "assistant", "content": "the answer is 42"}
    if usage:
        first["usage"] = {"prompt_tokens": 120, "completion_tokens": 18,
                          "prompt_tokens_details": {"cached_tokens": 64}}
        final["usage"] = {"prompt_tokens": 147, "completion_tokens": 7, "cached_tokens": 138}
    return {
        "id": "t1", "task_id": "arith-17", "answer": "42", "ground_truth": "42", "correct": True,
        "tools": [PYTHON_TOOL],
        "messages": [
            {"role": "system", "content": "you are a helpful assistant"},
            {"role": "user", "content": "what is 6*7?"},
            first,
            {"role": "tool", "tool_call_id": "c0", "content": "42", **({"tokens": 9} if usage else {})},
            final,
        ],
        "events": [{"turn": 0, "kind": "truncated_output", "detail": "cut at 2 tokens"}],
        "metadata": {"model": "tiny"},
    }


def test_parse_usage_record() -> None:
    traj = parse_record(chat(), path="log.jsonl", line=1)
    assert [(t.context_tokens, t.decode_tokens, t.cached_tokens) for t in traj.turns] == [(120, 18, 64), (147, 7, 138)]
    # appended after turn 0 = 147 - 120 - 18; the tool message says 9 of them are its response
    assert traj.turns[0].tool_tokens == 9 and traj.turns[1].tool_tokens == 0
    call = traj.turns[0].tool_calls[0]
    assert (call.name, call.arguments, call.output, call.response_tokens, call.call_id) == (
        "python", {"code": "print(6*7)"}, "42", 9, "c0")
    assert (traj.id, traj.task_id, traj.correct, traj.answer) == ("t1", "arith-17", True, "42")
    assert traj.events[0].kind == "truncated_output" and traj.metadata == {"model": "tiny"}


def test_round_trip_through_record_and_file(tmp_path: Path) -> None:
    traj = parse_record(chat())
    again = parse_record(json.loads(json.dumps(to_record(traj))))
    assert again.turns == traj.turns
    assert (again.events, again.metadata, again.tools, again.correct) == (traj.events, traj.metadata, traj.tools, True)
    path = tmp_path / "out.jsonl"
    write_trajectories(path, [traj, again])
    assert [t.turns for t in read_trajectories(path)] == [traj.turns, traj.turns]


def test_tool_tokens_split_by_content_length_when_not_given() -> None:
    record = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "a", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "function": {"name": "g", "arguments": "{oops"}}],
             "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
            {"role": "tool", "tool_call_id": "a", "content": "xxx"},
            {"role": "tool", "tool_call_id": "b", "content": "xxxxxxx", "error": "exception"},
            {"role": "assistant", "content": "done", "usage": {"prompt_tokens": 25, "completion_tokens": 2}},
        ]
    }
    turn = parse_record(record).turns[0]
    assert turn.tool_tokens == 10  # 25 - 10 - 5
    assert [c.response_tokens for c in turn.tool_calls] == [3, 7]
    assert turn.tool_calls[1].arguments == "{oops" and turn.tool_calls[1].error == "exception"


# ---- counting with a tokenizer: checked against a hand-written rendering and an independent count ----
HEADER = (
    "<|im_start|>system\nyou are a helpful assistant\n\n# Tools\n\nYou may call one or more functions to assist "
    "with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    + json.dumps(PYTHON_TOOL)
    + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call><|im_end|>\n<|im_start|>user\nwhat is 6*7?<|im_end|>\n"
)
GENERATION_PROMPT = "<|im_start|>assistant\n"
TURN0 = '<tool_call>\n{"name": "python", "arguments": {"code": "print(6*7)"}}\n</tool_call><|im_end|>\n'
TOOL0 = "<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n"
TURN1 = "the answer is 42<|im_end|>\n"


def expected_turns() -> list[tuple[int, int, int]]:
    """(context, decode, tool_tokens) per turn, counted on the hand-written rendering."""
    context0 = count_tokens(HEADER + GENERATION_PROMPT)
    decode0 = count_tokens(TURN0)
    context1 = count_tokens(HEADER + GENERATION_PROMPT + TURN0 + TOOL0 + GENERATION_PROMPT)
    # appended after turn 0: the tool block and the next generation prompt (template tokens count too)
    return [(context0, decode0, count_tokens(TOOL0 + GENERATION_PROMPT)), (context1, count_tokens(TURN1), 0)]


def test_template_renders_like_qwen25(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    messages = renderable(chat(usage=False)["messages"])
    full = tokenizer.apply_chat_template(messages, tools=[PYTHON_TOOL], tokenize=False)
    assert full == HEADER + GENERATION_PROMPT + TURN0 + TOOL0 + GENERATION_PROMPT + TURN1
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    assert len(ids) == count_tokens(full)


def test_tokenizer_counts_match_independent_count(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    counter = TemplateCounter(AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)))
    traj = parse_record(chat(usage=False), counter=counter)
    got = [(t.context_tokens, t.decode_tokens, t.tool_tokens) for t in traj.turns]
    assert got == expected_turns()
    assert got[0][2] == 8  # <|im_start|> user <tool_response> 42 </tool_response> <|im_end|> <|im_start|> assistant
    assert got[1][0] == got[0][0] + got[0][1] + got[0][2]
    assert traj.turns[0].tool_calls[0].response_tokens == 6  # the tool message alone
    assert all(t.cached_tokens is None for t in traj.turns)


def test_usage_wins_over_tokenizer(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    counter = TemplateCounter(AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)))
    traj = parse_record(chat(usage=True), counter=counter)
    assert [t.context_tokens for t in traj.turns] == [120, 147]


def test_counter_needs_a_chat_template() -> None:
    class NoTemplate:
        chat_template = None

    with pytest.raises(ValueError, match="chat template"):
        TemplateCounter(NoTemplate())


# ---- bad input: FormatError naming file, line, field ----
def _with(record: dict, index: int, **changes) -> dict:
    record["messages"][index] = {**record["messages"][index], **changes}
    return record


@pytest.mark.parametrize(
    "record, field",
    [
        ({"id": "x"}, "messages"),
        ({"messages": []}, "messages"),
        ([1, 2], "<line>"),
        (_with(chat(), 2, usage={"prompt_tokens": -3, "completion_tokens": 1}), "messages[2].usage.prompt_tokens"),
        (_with(chat(), 2, usage={"prompt_tokens": 3}), "messages[2].usage.completion_tokens"),
        (_with(chat(), 4, usage={"prompt_tokens": 3, "completion_tokens": 1.5}), "messages[4].usage.completion_tokens"),
        (_with(chat(), 4, usage={"prompt_tokens": 3, "completion_tokens": 1, "cached_tokens": -1}),
         "messages[4].usage.cached_tokens"),
        (_with(chat(), 3, tokens=-9), "messages[3].tokens"),
        (_with(chat(), 1, role="robot"), "messages[1].role"),
        (_with(chat(), 2, tool_calls={"name": "python"}), "messages[2].tool_calls"),
        (_with(chat(), 2, tool_calls=[{"function": {"arguments": "{}"}}]), "messages[2].tool_calls[0].function.name"),
        (chat(usage=False), "messages[2].usage"),
        ({**chat(), "correct": "yes"}, "correct"),
        ({**chat(), "events": [{"kind": "bad_json"}]}, "events[0]"),
        ({**chat(), "events": [{"kind": "bad_json", "turn": "first"}]}, "events[0]"),
        (_with(chat(), 2, usage={"prompt_tokens": float("nan"), "completion_tokens": 1}),
         "messages[2].usage.prompt_tokens"),
        (_with(chat(), 2, usage={"prompt_tokens": float("inf"), "completion_tokens": 1}),
         "messages[2].usage.prompt_tokens"),
        (_with(chat(), 2, usage={"prompt_tokens": 2**40 + 1, "completion_tokens": 1}),
         "messages[2].usage.prompt_tokens"),
        (_with(chat(), 3, tool_call_id=["c0"]), "messages[3].tool_call_id"),
        (_with(chat(), 3, content={"text": "42"}), "messages[3].content"),
        (_with(chat(), 3, content=[{"type": "text", "text": 42}]), "messages[3].content"),
        (_with(chat(), 3, error=5), "messages[3].error"),
        (_with(chat(), 2, timing={"prefill_s": "fast"}), "messages[2].timing.prefill_s"),
        (_with(chat(), 2, timing={"decode_s": -1.0}), "messages[2].timing.decode_s"),
        (_with(chat(), 2, tool_calls=[{"id": ["c0"], "function": {"name": "python"}}]), "messages[2].tool_calls[0].id"),
        (_with(chat(), 2, tool_calls=[{"function": {"name": "python", "arguments": [1]}}]),
         "messages[2].tool_calls[0].function.arguments"),
        ({**chat(), "events": 5}, "events"),
        ({**chat(), "events": [{"kind": "x", "turn": 0, "tool": 3}]}, "events[0].tool"),
        ({**chat(), "answer": ["42"]}, "answer"),
        ({**chat(), "metadata": []}, "metadata"),
    ],
)
def test_bad_records(record, field: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_record(record, path="runs.jsonl", line=7)
    assert info.value.field == field
    assert str(info.value).startswith(f"runs.jsonl:7: field '{field}'")


def test_numeric_answer_becomes_text() -> None:
    assert parse_record({**chat(), "answer": 42}).answer == "42"


def test_malformed_json_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps(chat()) + "\n\n" + '{"messages": [\n')
    with pytest.raises(FormatError, match=r"log.jsonl:3: field '<line>': expected valid JSON") as info:
        list(iter_trajectories(path))
    assert info.value.line == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot be read"):
        read_trajectories(tmp_path / "absent.jsonl")


def test_write_is_atomic(tmp_path: Path) -> None:
    def rows():
        yield {"a": 1}
        raise RuntimeError("disk full")

    target = tmp_path / "rows.jsonl"
    with pytest.raises(RuntimeError):
        write_jsonl(target, rows())
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary is left
    write_jsonl(target, [{"a": 1}, {"b": "é"}])
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "é"}\n'
    write_atomic(target, ["x"])
    assert target.read_text() == "x"


# ---- the one JSONL reader ----
def test_read_jsonl_strict_gives_line_numbers_and_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    # line 1 an object, line 2 blank, line 3 an object with a raw U+2028 inside a string, line 4 a list
    path.write_bytes(b'{"a": 1}\n\n{"b": "x\xe2\x80\xa8y"}\r\n[1, 2]\n')
    rows = read_jsonl(path)
    with pytest.raises(FormatError) as info:
        list(rows)
    assert (info.value.line, info.value.field) == (4, "<line>")
    assert str(info.value) == f"{path}:4: field '<line>': expected a JSON object, got list"
    path.write_bytes(b'{"a": 1}\n\n{"b": "x\xe2\x80\xa8y"}\r\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (3, {"b": "x\u2028y"})]


def test_read_jsonl_reads_a_gzipped_log_by_its_bytes(tmp_path: Path) -> None:
    """A gzip file is read as the JSONL it holds, whatever its name, with the same line numbers; a cut
    or damaged one is a FormatError naming the line it reached, strict or lenient."""
    import gzip

    text = b'{"a": 1}\n\n{"b": 2}\n[1]\n'
    for name in ("rows.jsonl.gz", "rows.jsonl"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(text))
        lenient = read_jsonl(path, strict=False)
        assert list(lenient) == [(1, {"a": 1}), (3, {"b": 2})] and lenient.skipped == [4]
        with pytest.raises(FormatError, match=f"{name}:4: field '<line>': expected a JSON object, got list"):
            list(read_jsonl(path))
    many = b"".join(b'{"i": %d, "pad": "%s"}\n' % (i, b"x" * 200) for i in range(2000))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(many)[:-100])
    with pytest.raises(FormatError, match=r"cut.jsonl.gz:\d+: field '<file>': expected a complete gzip stream"):
        list(read_jsonl(cut, strict=False))
    damaged = bytearray(gzip.compress(many))
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "damaged.jsonl.gz").write_bytes(bytes(damaged))
    with pytest.raises(FormatError, match="expected a complete gzip stream"):  # lenient: garbage lines pass
        list(read_jsonl(tmp_path / "damaged.jsonl.gz", strict=False))


@pytest.mark.parametrize(
    "bad_line, expected",
    [
        (b'{"a": ', "expected valid JSON (Expecting value at column 7)"),
        (b'{"a": "\xff"}', "expected UTF-8 text (byte 8 is not)"),
        (b"7", "expected a JSON object, got int"),
        (b"[" * 50_000 + b"]" * 50_000, "expected valid JSON (nesting too deep to read)"),
        (b'{"a": ' + b"1" * 5000 + b"}", "expected valid JSON (a number of over 4300 digits)"),
    ],
)
def test_read_jsonl_strict_says_what_was_expected(tmp_path: Path, bad_line: bytes, expected: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n' + bad_line + b"\n")
    with pytest.raises(FormatError) as info:
        list(read_jsonl(path))
    assert info.value.line == 2 and info.value.expected == expected


def test_read_jsonl_lenient_skips_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    # 1 ok, 2 not an object, 3 blank (not reported), 4 ok, 5 not UTF-8, 6 a half-written last line
    path.write_bytes(b'{"step": 1}\n"text"\n   \n{"step": 2}\n\xc3(\n{"step": 3, "loss": 0.')
    rows = read_jsonl(path, strict=False)
    assert list(rows) == [(1, {"step": 1}), (4, {"step": 2})]
    assert rows.skipped == [2, 5, 6]
    assert list(rows) == [(1, {"step": 1}), (4, {"step": 2})] and rows.skipped == [2, 5, 6]  # a second pass


def test_read_jsonl_unreadable_file_raises_in_both_modes(tmp_path: Path) -> None:
    for strict in (True, False):
        with pytest.raises(FormatError, match=r"absent.jsonl: field '<file>': cannot be read"):
            list(read_jsonl(tmp_path / "absent.jsonl", strict=strict))


def test_renderable_parses_arguments_and_drops_extension_keys() -> None:
    messages = [
        {"role": "assistant", "content": "", "usage": {"prompt_tokens": 3, "completion_tokens": 2},
         "timing": {"prefill_s": 0.1}, "tool_calls": [CALL, {"function": {"name": "python", "arguments": "6*"}}]},
        {"role": "tool", "tool_call_id": "c0", "content": "42", "tokens": 9, "error": None},
    ]
    assert renderable(messages) == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "python", "arguments": {"code": "print(6*7)"}}},
            {"function": {"name": "python", "arguments": {"_raw": "6*"}}},
        ]},
        {"role": "tool", "tool_call_id": "c0", "content": "42"},
    ]
    assert messages[0]["tool_calls"][0] is CALL and isinstance(CALL["function"]["arguments"], str)  # not mutated

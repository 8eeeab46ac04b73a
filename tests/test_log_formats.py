"""ShareGPT and Hermes logs: converted to the one trajectory, priced the same as the interchange format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pte_rl.cli import main
from pte_rl.pricing.formats import detect_format, parse_any
from pte_rl.pricing.jsonl import FormatError

USAGE0 = {"prompt_tokens": 120, "completion_tokens": 18}
USAGE1 = {"prompt_tokens": 147, "completion_tokens": 7}
CALL = {"name": "python", "arguments": {"code": "print(6*7)"}}
TOOLS = [{"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}]


def openai_record() -> dict:
    return {"id": "t1", "correct": True, "tools": TOOLS, "messages": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": "", "usage": USAGE0, "tool_calls": [{"id": "c0", "type": "function",
         "function": {"name": "python", "arguments": json.dumps(CALL["arguments"])}}]},
        {"role": "tool", "tool_call_id": "c0", "content": "42", "tokens": 9},
        {"role": "assistant", "content": "The answer is 42.", "usage": USAGE1},
    ]}


def sharegpt_record() -> dict:
    return {"id": "t1", "correct": True, "system": "Use tools.", "tools": json.dumps([TOOLS[0]["function"]]),
            "conversations": [
                {"from": "human", "value": "What is 6*7?"},
                {"from": "function_call", "value": json.dumps(CALL), "usage": USAGE0},
                {"from": "observation", "value": "42", "tokens": 9},
                {"from": "gpt", "value": "The answer is 42.", "usage": USAGE1},
            ]}


def hermes_record() -> dict:
    return {"id": "t1", "correct": True, "tools": TOOLS, "messages": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>", "usage": USAGE0},
        {"role": "user", "content": "<tool_response>\n42\n</tool_response>", "tokens": 9},
        {"role": "assistant", "content": "The answer is 42.", "usage": USAGE1},
    ]}


SHAPES = {"openai": openai_record, "sharegpt": sharegpt_record, "hermes": hermes_record}


def write(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("fmt", ["auto", "forced"])
def test_score_is_the_same_in_every_shape(capsys, tmp_path: Path, fmt: str) -> None:
    # turns (120, 18) and (147, 7), gamma 0.01: prefill 267, decode 0.01 * (2160 + 1029) = 31.89
    rows = {}
    for shape, make in SHAPES.items():
        out = tmp_path / f"{shape}.rows.jsonl"
        argv = ["score", str(write(tmp_path / f"{shape}.jsonl", make())), "--gamma", "0.01", "--out", str(out)]
        assert main(argv + (["--format", shape] if fmt == "forced" else [])) == 0
        rows[shape] = json.loads(out.read_text())
    capsys.readouterr()
    assert rows["openai"] == {"id": "t1", "task_id": None, "pte": pytest.approx(298.89), "prefill": 267.0,
                              "decode": pytest.approx(31.89), "generated_tokens": 25, "total_tokens": 292,
                              "tool_calls": 1, "turns": 2, "correct": True}
    assert rows["sharegpt"] == rows["openai"] and rows["hermes"] == rows["openai"]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_gives_the_same_trajectory(shape: str) -> None:
    trajectory = parse_any(SHAPES[shape](), "auto")
    assert [(t.context_tokens, t.decode_tokens, t.tool_tokens) for t in trajectory.turns] == [(120, 18, 9), (147, 7, 0)]
    call = trajectory.turns[0].tool_calls[0]
    assert (call.name, call.arguments, call.output, call.response_tokens) == ("python", CALL["arguments"], "42", 9)
    assert trajectory.tools == TOOLS and trajectory.correct is True
    assert [m["role"] for m in trajectory.messages or []] == ["system", "user", "assistant", "tool", "assistant"]


def test_detect_format() -> None:
    assert [detect_format(make()) for make in SHAPES.values()] == ["openai", "sharegpt", "hermes"]


def test_parallel_calls_and_responses() -> None:
    calls = [{"name": "python", "arguments": {"code": "1"}}, {"name": "search", "arguments": "{\"q\": \"x\"}"}]
    sharegpt = {"conversations": [
        {"from": "human", "value": "q"},
        {"from": "function_call", "value": json.dumps(calls), "usage": {"prompt_tokens": 10, "completion_tokens": 4}},
        {"from": "observation", "value": "1", "tokens": 3},
        {"from": "observation", "value": "found", "tokens": 5},
    ]}
    hermes = {"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "Let me check. " + "".join(f"<tool_call>{json.dumps(c)}</tool_call>"
                                                                    for c in calls),
         "usage": {"prompt_tokens": 10, "completion_tokens": 4}},
        {"role": "tool", "content": "<tool_response>1</tool_response>", "tokens": 3},
        {"role": "tool", "content": "<tool_response>found</tool_response>", "tokens": 5},
    ]}
    for record in (sharegpt, hermes):
        turn = parse_any(record).turns[0]
        assert [(c.name, c.arguments, c.output, c.response_tokens) for c in turn.tool_calls] == [
            ("python", {"code": "1"}, "1", 3), ("search", {"q": "x"}, "found", 5)]
        assert turn.tool_tokens == 8
    assert parse_any(hermes).messages[1]["content"] == "Let me check."  # type: ignore[index]


@pytest.mark.parametrize(("record", "fmt", "field"), [
    ({"conversations": [{"from": "robot", "value": "x"}]}, "auto", "conversations[0].from"),
    ({"conversations": [{"from": "function_call", "value": "{oops"}]}, "auto", "conversations[0].value"),
    ({"conversations": [{"from": "function_call", "value": "{\"name\": 3}"}]}, "auto", "conversations[0].value"),
    ({"conversations": "hi"}, "auto", "conversations"),
    ({"conversations": [{"from": "gpt", "value": "hi"}]}, "auto", "conversations[0].usage"),
    ({"system": "s", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a",
      "usage": {"prompt_tokens": -1, "completion_tokens": 1}}]}, "auto", "conversations[1].usage.prompt_tokens"),
    ({"messages": [{"role": "assistant", "content": "<tool_call>{bad</tool_call>"}]}, "hermes", "messages[0].content"),
    ({"messages": [{"role": "assistant", "content": "<tool_call>{\"name\": \"f\"}"}]}, "hermes", "messages[0].content"),
    ({"messages": [{"role": "user", "content": "<tool_response>1</tool_response><tool_response>2</tool_response>",
                    "tokens": 3}]}, "hermes", "messages[0].tokens"),
    ({"id": 1}, "auto", "messages"),
    ({"messages": [{"role": "user", "content": "x"}]}, "sharegpt", "conversations"),
])
def test_bad_records_name_the_source_field(record: dict, fmt: str, field: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_any(record, fmt, path="log.jsonl", line=4)
    assert info.value.field == field and str(info.value).startswith(f"log.jsonl:4: field '{field}'")


def test_missing_usage_says_to_pass_a_tokenizer(capsys, tmp_path: Path) -> None:
    record = sharegpt_record()
    del record["conversations"][3]["usage"]
    out = tmp_path / "rows.jsonl"
    assert main(["score", str(write(tmp_path / "log.jsonl", record)), "--gamma", "0.01", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "log.jsonl:1: field 'conversations[3].usage'" in err and "--tokenizer DIR" in err
    assert not out.exists()


def test_patterns_reads_every_shape(capsys, tmp_path: Path) -> None:
    outputs = []
    for shape, make in SHAPES.items():
        assert main(["patterns", str(write(tmp_path / f"{shape}.jsonl", make())), "--json", "--gamma", "0.01"]) == 0
        result = json.loads(capsys.readouterr().out)
        outputs.append((result["trajectories"], result["metrics"]))
    assert outputs[0] == outputs[1] == outputs[2]


def _without_usage(record: dict) -> dict:
    for turn in record.get("conversations") or record["messages"]:
        turn.pop("usage", None)
        turn.pop("tokens", None)
    return record


def test_tokenizer_counts_every_shape_alike(capsys, tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    rows = []
    for shape, make in SHAPES.items():
        out = tmp_path / f"{shape}.rows.jsonl"
        log = write(tmp_path / f"{shape}.jsonl", _without_usage(make()))
        assert main(["score", str(log), "--tokenizer", str(tiny_tokenizer_dir), "--gamma", "0.01",
                     "--out", str(out)]) == 0, capsys.readouterr().err
        rows.append(json.loads(out.read_text()))
    assert rows[0]["turns"] == 2 and rows[0]["generated_tokens"] > 0
    assert rows[1] == rows[0] and rows[2] == rows[0]

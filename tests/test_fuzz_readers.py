"""Property-based: malformed logs in every shape end in exit status 2 with file:line and a field, never a
traceback, and leave no partial ``--out``."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pte_rl.cli import main
from pte_rl.pricing.formats import parse_any
from pte_rl.pricing.jsonl import FormatError

CALL = {"name": "python", "arguments": {"code": "print(1)"}}
USAGE = {"prompt_tokens": 10, "completion_tokens": 3}


def valid(shape: str) -> dict[str, Any]:
    return copy.deepcopy(_valid(shape))  # mutated by the tests


def _valid(shape: str) -> dict[str, Any]:
    if shape == "sharegpt":
        return {"conversations": [
            {"from": "human", "value": "q"}, {"from": "function_call", "value": json.dumps(CALL), "usage": USAGE},
            {"from": "observation", "value": "1", "tokens": 2}, {"from": "gpt", "value": "a", "usage": USAGE}]}
    if shape == "hermes":
        return {"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": f"<tool_call>{json.dumps(CALL)}</tool_call>", "usage": USAGE},
            {"role": "user", "content": "<tool_response>1</tool_response>", "tokens": 2},
            {"role": "assistant", "content": "a", "usage": USAGE}]}
    return {"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "usage": USAGE, "tool_calls": [
            {"id": "c", "function": {"name": "python", "arguments": json.dumps(CALL["arguments"])}}]},
        {"role": "tool", "tool_call_id": "c", "content": "1", "tokens": 2},
        {"role": "assistant", "content": "a", "usage": USAGE}]}


BAD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20), st.floats(allow_nan=True),
    st.text(max_size=20), st.sampled_from(["x" * 200_000, "robot", "{oops", "<tool_call>{", '{"name": 1}',
                                           "<tool_response>", json.dumps({"name": "f", "arguments": 3})]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
"""Wrong types, huge and broken strings, unknown roles, tool calls with bad arguments."""


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append((node, key))
        _slots(value, out)
    return out


@st.composite
def malformed_lines(draw: st.DrawFn) -> tuple[str, bytes]:
    shape = draw(st.sampled_from(["openai", "sharegpt", "hermes"]))
    record = valid(shape)
    for _ in range(draw(st.integers(1, 3))):
        places = _slots(record, [])
        if not places:
            break
        container, key = places[draw(st.integers(0, len(places) - 1))]
        if isinstance(container, dict) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(BAD_VALUES)
    text = json.dumps(record).encode()
    cut = draw(st.sampled_from([None, None, None, "cut", "bytes"]))
    if cut == "cut":
        text = text[: draw(st.integers(1, len(text) - 1))]
    elif cut == "bytes":
        text = b"\xff" + text
    return shape, text


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)  # an exception other than InputError escapes: the test fails with its traceback
    return code, err.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed_lines())
def test_malformed_logs_exit_2_naming_file_line_field(case: tuple[str, bytes]) -> None:
    _shape, text = case
    with tempfile.TemporaryDirectory() as tmp:
        log, out = Path(tmp) / "log.jsonl", Path(tmp) / "rows.jsonl"
        log.write_bytes(b'{"messages": [{"role": "assistant", "content": "ok", "usage": {"prompt_tokens": 1, '
                        b'"completion_tokens": 1}}]}\n' + text + b"\n")
        for command in ("score", "patterns"):
            argv = [command, str(log), "--gamma", "0.01"] + (["--out", str(out)] if command == "score" else [])
            code, err = _cli(argv)
            assert code in (0, 2), err
            if code == 2:  # the good first line must not have been written either
                assert re.search(r"log\.jsonl:2: field '[^']+': ", err), err
                assert "Traceback" not in err and len(err.strip().splitlines()) == 1
                assert not out.exists()


@settings(max_examples=300, deadline=None)
@given(malformed_lines(), st.sampled_from(["auto", "openai", "sharegpt", "hermes"]))
def test_reader_raises_only_format_errors(case: tuple[str, bytes], fmt: str) -> None:
    _shape, text = case
    try:
        record = json.loads(text)
    except ValueError:
        return  # not JSON: the line reader's case, covered above
    try:
        parse_any(record, fmt, path="log.jsonl", line=7)
    except FormatError as exc:
        assert str(exc).startswith(f"log.jsonl:7: field '{exc.field}': ") and exc.field


def test_deep_nesting_and_huge_integers_are_rejected(tmp_path: Path, capsys) -> None:
    for line in (b"[" * 100_000 + b"]" * 100_000, b'{"messages": ' + b"9" * 5000 + b"}"):
        log = tmp_path / "log.jsonl"
        log.write_bytes(line + b"\n")
        assert main(["score", str(log), "--gamma", "0.01"]) == 2
        assert "log.jsonl:1: field '<line>': expected valid JSON" in capsys.readouterr().err


def test_huge_token_counts_are_rejected(tmp_path: Path, capsys) -> None:
    record = valid("openai")
    record["messages"][1]["usage"] = {"prompt_tokens": 10**30, "completion_tokens": 3}
    (tmp_path / "log.jsonl").write_text(json.dumps(record) + "\n")
    assert main(["score", str(tmp_path / "log.jsonl"), "--gamma", "0.01"]) == 2
    assert "field 'messages[1].usage.prompt_tokens': expected a token count of at most 2^40" in capsys.readouterr().err


SINGLE_BAD = [None, True, -1, 1.5, float("nan"), 10**30, "x", "{oops", "<tool_call>{", [1], {"a": 1}, [[{}]]]
DELETE = object()


def _single_mutations() -> list[tuple[str, int, Any]]:
    return [(shape, i, bad) for shape in ("openai", "sharegpt", "hermes")
            for i in range(len(_slots(valid(shape), []))) for bad in [*SINGLE_BAD, DELETE]]


def test_every_field_of_every_shape_set_to_every_bad_value() -> None:
    """Exhaustive over single mutations: the reader raises FormatError or gives a trajectory that prices
    and goes through the pattern detectors without an error."""
    from pte_rl.cli.score import score_rows
    from pte_rl.patterns import detect
    from pte_rl.pricing.cost import CostModel

    outcomes = {"accepted": 0, "rejected": 0}
    for shape, i, bad in _single_mutations():
        record = valid(shape)
        container, key = _slots(record, [])[i]
        if bad is DELETE:
            del container[key]
        else:
            container[key] = copy.deepcopy(bad)
        try:
            trajectory = parse_any(record, "auto", path="log.jsonl", line=1)
        except FormatError as exc:
            assert str(exc).startswith("log.jsonl:1: field '"), (shape, i, bad)
            outcomes["rejected"] += 1
            continue
        score_rows([trajectory], CostModel(gamma=0.01))
        detect(trajectory)
        outcomes["accepted"] += 1
    assert outcomes["rejected"] > outcomes["accepted"] > 0

"""Pattern detectors on logs of other harnesses: tool names, output wrappers and answer forms that
pte_rl does not write itself. Each record of tests/data/foreign/*.jsonl carries ``expect``: every
pattern it must show (true) and must not show (false); the reader ignores that key. The same
trajectories in ShareGPT and Hermes shapes (tests/data/foreign/sharegpt/, .../hermes/) give the
same flags through ``pte-rl patterns``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pte_rl.checkers import extract_answer
from pte_rl.cli import main
from pte_rl.patterns import PATTERNS, PatternConfig, confirmatory, detect, lack_of_tool_priors, tool_mixing
from pte_rl.patterns.base import is_compute_tool, tool_family, toolset_of
from pte_rl.patterns.outputs import read_output
from pte_rl.pricing.formats import detect_format
from pte_rl.pricing.jsonl import read_trajectories
from pte_rl.pricing.trajectory import Trajectory

FOREIGN = Path(__file__).parent / "data" / "foreign"
FILES = sorted(FOREIGN.glob("*.jsonl"))


def _records() -> list[tuple[str, dict, Trajectory]]:
    out = []
    for path in FILES:
        raw = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out += [(path.name, r, t) for r, t in zip(raw, read_trajectories(path), strict=True)]
    return out


RECORDS = _records()
BY_ID = {r["id"]: t for _, r, t in RECORDS}


def test_the_corpus_spans_harnesses_patterns_and_controls():
    assert len(RECORDS) >= 30 and len(FILES) >= 4
    assert len(BY_ID) == len(RECORDS), "ids are unique"
    for name, record, _ in RECORDS:
        assert set(record["expect"]) == set(PATTERNS), f"{name}:{record['id']}: expect names every pattern"
    for pattern in PATTERNS:  # each pattern is both shown and absent somewhere
        assert {r["expect"][pattern] for _, r, _ in RECORDS} == {True, False}, pattern
    for path in FILES:  # each harness style has a clean control
        assert any(not any(r["expect"].values()) for n, r, _ in RECORDS if n == path.name), path.name


@pytest.mark.parametrize(("name", "record", "trajectory"), RECORDS, ids=[r["id"] for _, r, _ in RECORDS])
def test_each_foreign_record_shows_exactly_its_expected_patterns(name, record, trajectory):
    flags = detect(trajectory)
    found = {p: any(f.pattern == p for f in flags) for p in PATTERNS}
    wrong = {p: f"expected {record['expect'][p]}" for p in PATTERNS if found[p] != record["expect"][p]}
    assert not wrong, f"{name}:{record['id']}: {wrong}; flags: {[f.to_dict() for f in flags]}"
    assert all(f.evidence for f in flags)


def test_evidence_points_at_the_turn_and_the_text():
    (empty,) = lack_of_tool_priors(BY_ID["ci-empty-stdout"])
    assert (empty.turn, empty.kind) == (0, "empty_output") and "json" in empty.evidence
    (sections,) = lack_of_tool_priors(BY_ID["pt-empty"])
    assert (sections.turn, sections.kind) == (0, "empty_output") and "sections" in sections.evidence
    (raised,) = lack_of_tool_priors(BY_ID["pt-traceback"])
    assert raised.turn == 0 and raised.kind == "tool_error" and "ZeroDivisionError" in raised.evidence
    (error_field,) = lack_of_tool_priors(BY_ID["cc-error-field"])
    assert error_field.kind == "tool_error" and "TypeError" in error_field.evidence
    (early,) = confirmatory(BY_ID["cc-confirm"])
    assert early.turn == 0 and early.kind == "final answer" and "'210'" in early.evidence
    assert "runCode" in early.evidence
    (no_truth,) = confirmatory(BY_ID["ip-confirm-no-truth"])
    assert BY_ID["ip-confirm-no-truth"].ground_truth is None
    assert no_truth.turn == 0 and no_truth.kind == "final answer" and "'4913'" in no_truth.evidence
    (mixed,) = tool_mixing(BY_ID["cc-mix"])
    assert mixed.turn == 1 and mixed.value == 2.0 and "web: webSearch" in mixed.evidence


def test_families_can_be_turned_off_or_replaced():
    lists_only = PatternConfig(tool_families=False)
    # google_search and open_url are then two sets of their own, and execute_python computes nothing
    assert tool_mixing(BY_ID["sa-search-visit"], lists_only)
    assert confirmatory(BY_ID["sa-confirm-python"], lists_only) == []
    assert confirmatory(BY_ID["sa-confirm-python"], PatternConfig(compute_tools=("execute_python",)))
    assert confirmatory(BY_ID["sa-confirm-python"], PatternConfig(compute_tools=("python",))) == []
    # an explicit toolset wins over the family: search and code in one set is no mixing
    assert tool_mixing(BY_ID["cc-mix"], PatternConfig(toolsets={"any": ["webSearch", "runCode"]})) == []


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("python", "compute"), ("python_tool", "compute"), ("code_interpreter", "compute"),
        ("execute_python", "compute"), ("run_code", "compute"), ("ipython", "compute"),
        ("jupyter", "compute"), ("calculator", "compute"), ("runCode", "compute"),
        ("search", "search"), ("web_search", "search"), ("google_search", "search"),
        ("search_wikipedia", "search"), ("webSearch", "search"), ("visit", "read"), ("browse", "read"),
        ("open_url", "read"), ("fetch", "read"), ("read_page", "read"), ("fetchPage", "read"),
        ("get_weather", None), ("read_file", None), ("lookup", None),
    ],
)
def test_tool_family_from_the_name(name, family):
    assert tool_family(name) == family


def test_roles_follow_config():
    default = PatternConfig()
    assert is_compute_tool("python_tool", default) and not is_compute_tool("google_search", default)
    assert toolset_of("google_search", default) == toolset_of("open_url", default) == "web"
    assert toolset_of("get_weather", default) == "get_weather"
    assert toolset_of("python_tool", PatternConfig(toolsets={"sandbox": ["python_tool"]})) == "sandbox"


@pytest.mark.parametrize(
    ("text", "empty", "raised", "wrapper"),
    [
        ("", True, False, "plain"),
        ("42\n", False, False, "plain"),
        ("[stdout]\n\n[stderr]\n", True, False, "sections"),
        ("STDOUT:\n7\nSTDERR:\n", False, False, "sections"),
        ("stdout:\n\nstderr:\n\nexit code: 2", False, True, "sections"),
        ("Output: 12\nError: name 'y' is not defined", False, True, "sections"),
        ('{"stdout": null, "stderr": ""}', True, False, "json"),
        ('{"output": "", "error": null}', True, False, "json"),
        ('{"result": "5", "status": "error"}', False, True, "json"),
        ('{"stdout": "", "returncode": 1}', False, True, "json"),
        ('{"stdout": "ok", "stderr": "UserWarning: slow"}', False, False, "json"),
        ('{"title": "", "url": ""}', False, False, "plain"),  # not a wrapper: content
        ("No output.", True, False, "plain"),
    ],
)
def test_read_output_in_its_wrappers(text, empty, raised, wrapper):
    output = read_output(text)
    assert (output.empty, output.raised, output.wrapper) == (empty, raised, wrapper)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Work.\n**Answer:** 42", "42"),
        ("Work.\n**Answer**: 42", "42"),
        ("**Final Answer**: $\\frac{1}{2}$", "\\frac{1}{2}"),
        ("<ANSWER>Paris</ANSWER>", "Paris"),
        ("Final answer:\n1060", "1060"),
        ("So $\\boxed{56211}$.", "56211"),
    ],
)
def test_final_answers_in_their_common_forms(text, answer):
    assert extract_answer(text)[0] == answer


# ---------------------------------------------------------------- the same logs in other shapes


def _cli_flags(path: Path, capsys) -> dict[str, list[tuple]]:
    """``pte-rl patterns PATH --json`` (shape detected) -> id -> sorted (pattern, turn, kind)."""
    assert main(["patterns", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    return {t["id"]: sorted((f["pattern"], f["turn"], f["kind"]) for f in t["flags"]) for t in out["trajectories"]}


@pytest.mark.parametrize("shape", ["sharegpt", "hermes"])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_sharegpt_and_hermes_shapes_give_the_same_flags(path, shape, capsys):
    other = FOREIGN / shape / path.name
    first = json.loads(other.read_text().splitlines()[0])
    assert detect_format(first) == shape
    expected, found = _cli_flags(path, capsys), _cli_flags(other, capsys)
    assert set(found) == set(expected) and sum(map(len, expected.values())) > 0
    for record_id, flags in expected.items():  # the same patterns, kinds and turns (ShareGPT's text
        assert found[record_id] == flags, record_id  # and call entries of one turn are one message)

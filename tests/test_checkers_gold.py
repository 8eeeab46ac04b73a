"""Gold answers of the real benchmark files grade as correct through their checkers (and wrong pairs don't).

Needs the benchmark files: ``$PTE_RL_DATA_DIR``, else ``../shared/data`` beside the repository;
skipped when they are absent. The default run grades every 50th row of each file; the whole files
(about two thousand math-verify checks, minutes on 2 cores) run with ``-m slow``.
"""

from __future__ import annotations

import pytest
from script_helpers import load_script

grade_gold = load_script("benchmarks/grade_gold.py", "grade_gold")
DATA = grade_gold.data_dir()
pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(
        DATA is None, reason="benchmark files not found (set PTE_RL_DATA_DIR or put them in ../shared/data)"
    ),
]


def _assert_all_as_expected(report: dict) -> None:
    failures = {name: row["listed"] for name, row in report.items() if row["listed"]}
    assert not failures, failures
    for name, row in report.items():
        assert row["cases"] > 0, name
        assert row["rate"] == 1.0, name


def test_gold_answers_sample():
    report = grade_gold.grade_all(DATA, every=50)
    _assert_all_as_expected(report)
    # every 50th of 500 rows -> 10 per MATH500 suite; SimpleQA rows have one accepted answer each.
    assert report["math500/solution"]["cases"] == 10
    assert report["simpleqa/answer_plain"]["cases"] == 10
    assert report["negative/math500"]["cases"] >= 8


@pytest.mark.slow
def test_gold_answers_full():
    report = grade_gold.grade_all(DATA, every=1)
    _assert_all_as_expected(report)
    assert report["math500/answer_boxed"]["cases"] == 500
    assert report["gsm8k/solution_number"]["cases"] == 500
    assert report["aime25/answer_number"]["cases"] == 30


def test_gsm8k_number_rejects_a_solution_without_marker():
    assert grade_gold.gsm8k_number("so 5 apples\n#### 1,200") == "1200"
    with pytest.raises(ValueError, match="####"):
        grade_gold.gsm8k_number("no final marker")

"""Grade every gold answer of the benchmark files against itself, and report the rate and every miss.

    python benchmarks/grade_gold.py [--data DIR] [--out benchmarks/results/grade_gold.json] [--every N]

The data directory is ``--data``, else ``$PTE_RL_DATA_DIR``, else ``../shared/data`` beside the
repository. Suites (each a list of (completion, gold) pairs through the checker a task would use):

  math500/answer_boxed    "The final answer is $\\boxed{A}$."  vs A            math (math-verify first)
  math500/answer_plain    A as the completion's last line          vs A            math (math-verify first)
  math500/solution        the gold worked solution (its last \\boxed{}) vs A      math (math-verify first)
  aime24/answer, aime25/answer   boxed answer vs answer (math) and "Answer: A" vs A (number)
  gsm8k/solution          the worked solution ending in "#### N"    vs N            number and math
  simpleqa/answer         each accepted answer, plain and in <answer> tags, vs the list   qa

``math-verify first`` means MathChecker(text_first=False): sympy must find the answers equal, and
equal normalised text only counts where sympy cannot decide (words, choice letters).

Negative controls: the gold of each row against the next row's gold, where they differ as text;
every acceptance there is a false positive and is listed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pte_rl.checkers import Checker, MathChecker, NumberChecker, QAChecker, normalize_qa

FILES = ("math500.jsonl", "aime24.jsonl", "aime25.jsonl", "gsm8k500.jsonl", "simpleqa500.jsonl")


def data_dir(explicit: str | None = None) -> Path | None:
    """``explicit``, else ``$PTE_RL_DATA_DIR``, else ``../shared/data`` beside the repo (the first one
    given is used); None when it lacks any of the benchmark files."""
    candidate = Path(explicit or os.environ.get("PTE_RL_DATA_DIR") or REPO.parent / "shared" / "data")
    return candidate if all((candidate / name).is_file() for name in FILES) else None


def _rows(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SystemExit(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
    return rows


def gsm8k_number(answer: str) -> str:
    """The final number of a GSM8K worked solution (after ``####``), thousands separators removed."""
    if "####" not in answer:
        raise ValueError(f"answer: expected a GSM8K solution ending in '#### N', got {answer[-60:]!r}")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def suites(directory: Path, every: int = 1) -> dict[str, tuple[Checker, list[tuple[int, str, Any]]]]:
    """Suite name -> (checker, [(row index, completion, ground truth)]); every ``every``-th row."""
    math_first = MathChecker(text_first=False, timeout_s=60)
    number, qa = NumberChecker(), QAChecker()
    math500 = _rows(directory / "math500.jsonl")[::every]
    aime = {name: _rows(directory / f"{name}.jsonl")[::every] for name in ("aime24", "aime25")}
    gsm8k = _rows(directory / "gsm8k500.jsonl")[::every]
    simpleqa = _rows(directory / "simpleqa500.jsonl")[::every]
    out: dict[str, tuple[Checker, list]] = {
        "math500/answer_boxed": (
            math_first,
            [
                (i, f"The final answer is $\\boxed{{{r['answer']}}}$.", r["answer"])
                for i, r in enumerate(math500)
            ],
        ),
        "math500/answer_plain": (math_first, [(i, r["answer"], r["answer"]) for i, r in enumerate(math500)]),
        "math500/solution": (math_first, [(i, r["solution"], r["answer"]) for i, r in enumerate(math500)]),
    }
    for name, rows in aime.items():
        out[f"{name}/answer_math"] = (
            math_first,
            [(i, f"\\boxed{{{r['answer']}}}", r["answer"]) for i, r in enumerate(rows)],
        )
        out[f"{name}/answer_number"] = (
            number,
            [(i, f"Answer: {r['answer']}", r["answer"]) for i, r in enumerate(rows)],
        )
    out["gsm8k/solution_number"] = (
        number,
        [(i, r["answer"], gsm8k_number(r["answer"])) for i, r in enumerate(gsm8k)],
    )
    out["gsm8k/solution_math"] = (
        math_first,
        [(i, r["answer"], gsm8k_number(r["answer"])) for i, r in enumerate(gsm8k)],
    )
    out["simpleqa/answer_plain"] = (
        qa,
        [(i, a, r["answer"]) for i, r in enumerate(simpleqa) for a in r["answer"]],
    )
    out["simpleqa/answer_tag"] = (
        qa,
        [(i, f"<answer>{a}</answer>", r["answer"]) for i, r in enumerate(simpleqa) for a in r["answer"]],
    )
    return out


def negative_controls(
    directory: Path, every: int = 1
) -> dict[str, tuple[Checker, list[tuple[int, str, Any]]]]:
    """Each row's gold answered with the next row's gold, where the two differ as text."""
    math500 = _rows(directory / "math500.jsonl")[::every]
    gsm8k = [gsm8k_number(r["answer"]) for r in _rows(directory / "gsm8k500.jsonl")[::every]]
    simpleqa = [r["answer"] for r in _rows(directory / "simpleqa500.jsonl")[::every]]
    pairs_math = [
        (i, f"\\boxed{{{math500[i + 1]['answer']}}}", r["answer"])
        for i, r in enumerate(math500[:-1])
        if math500[i + 1]["answer"].replace(" ", "") != r["answer"].replace(" ", "")
    ]
    pairs_gsm = [(i, f"#### {gsm8k[i + 1]}", g) for i, g in enumerate(gsm8k[:-1]) if gsm8k[i + 1] != g]
    pairs_qa = [
        (i, simpleqa[i + 1][0], g)
        for i, g in enumerate(simpleqa[:-1])
        if normalize_qa(simpleqa[i + 1][0]) not in {normalize_qa(a) for a in g}
    ]
    return {
        "negative/math500": (MathChecker(timeout_s=60), pairs_math),
        "negative/gsm8k": (NumberChecker(), pairs_gsm),
        "negative/simpleqa": (QAChecker(), pairs_qa),
    }


def run_suite(checker: Checker, cases: list[tuple[int, str, Any]], expect: bool) -> dict:
    """Grade ``cases``; a case whose verdict is not ``expect`` is listed with its cause, and a case
    that only equal text settled (math-verify unsure or of another opinion) under ``text_only``."""
    start = time.perf_counter()
    listed, text_only, reasons = [], [], Counter()
    for index, completion, truth in cases:
        result = checker.grade(completion, truth)
        reasons[result.reason.split(":")[0].split(" (")[0] if result.correct else "rejected"] += 1
        row = {
            "row": index,
            "gold": truth,
            "extracted": result.extracted,
            "method": result.method,
            "reason": result.reason,
        }
        if result.correct is not expect:
            listed.append(row)
        elif "; math-verify:" in result.reason:
            text_only.append(row)
    hits = len(cases) - len(listed)
    return {
        "checker": checker.name,
        "cases": len(cases),
        "as_expected": hits,
        "rate": hits / len(cases) if cases else None,
        "listed": listed,
        "text_only": text_only,
        "decided_by": dict(reasons),
        "seconds": round(time.perf_counter() - start, 2),
    }


def grade_all(directory: Path, every: int = 1) -> dict[str, dict]:
    report = {
        name: run_suite(checker, cases, True) for name, (checker, cases) in suites(directory, every).items()
    }
    for name, (checker, cases) in negative_controls(directory, every).items():
        report[name] = run_suite(checker, cases, False)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="directory with the benchmark JSONL files")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "grade_gold.json"))
    parser.add_argument("--every", type=int, default=1, help="grade every N-th row only (quick look)")
    args = parser.parse_args(argv)
    directory = data_dir(args.data)
    if directory is None:
        print("benchmark files not found: pass --data DIR or set PTE_RL_DATA_DIR", file=sys.stderr)
        return 2
    report = grade_all(directory, args.every)
    print(f"{'suite':28s} {'checker':7s} {'cases':>6s} {'ok':>6s} {'rate':>8s} {'s':>7s}")
    for name, row in report.items():
        rate = "-" if row["rate"] is None else f"{100 * row['rate']:.2f}%"
        print(
            f"{name:28s} {row['checker']:7s} {row['cases']:6d} {row['as_expected']:6d} {rate:>8s} {row['seconds']:7.1f}"
        )
    for name, row in report.items():
        print(f"{name}: decided by {row['decided_by']}")
    for name, row in report.items():
        for case in row["text_only"]:
            print(f"settled by text only: {name} row {case['row']}: gold {case['gold']!r}: {case['reason']}")
    for name, row in report.items():
        for miss in row["listed"]:
            kind = "false positive" if name.startswith("negative/") else "miss"
            print(
                f"{kind}: {name} row {miss['row']}: gold {miss['gold']!r} extracted {miss['extracted']!r} "
                f"({miss['method']}): {miss['reason']}"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"data": str(directory), "every": args.every, "suites": report}, indent=1)
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

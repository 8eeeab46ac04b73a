"""Correctness checkers: did a completion reach the ground truth?

Every checker is a small picklable object with one interface::

    checker = get_checker("math")                      # or "qa", "number", "judge", with options
    checker(answer_text, ground_truth) -> bool | None  # same as checker.check(...)
    checker.grade(answer_text, ground_truth) -> CheckResult(correct, extracted, reason, method, matched)

``grade`` says what answer was extracted, how, and why it was judged so (for reporting misses).

Answer extraction (all checkers, :func:`extract_answer`): ``<think>...</think>`` reasoning is dropped
first; then the answer is, in order of precedence, the content of the last ``<answer>...</answer>``
(its last ``\\boxed{}`` if it holds one), the last ``\\boxed{}`` / ``\\fbox{}`` (braces matched, so
nesting is fine), the last "The (final) answer is X" / "Answer: X" / "#### X", else the last
non-empty line.

Checkers:
  math    math-verify (sympy) equivalence of the extracted answer and the gold answer: fractions,
          decimals, intervals, sets, matrices, expressions, equations (``x = 5`` vs ``5``), with
          dollars, percent, degrees, thousands separators and trailing unit words tolerated; a
          column vector equals the same tuple; text answers (``\\text{Evelyn}``, ``(C)``) compare
          as normalised strings.
  qa      SQuAD-style normalised exact match (lowercase, punctuation, articles and extra spaces
          removed) or token F1 >= ``f1_threshold`` against any accepted answer (SimpleQA style).
  number  ``|x - y| <= max(rel_tol * |y|, abs_tol)`` between the extracted number and the gold.
  judge   an LLM judge behind an OpenAI-compatible endpoint (pte_rl.checkers.judge; off unless selected).

Ground truth may be one answer or a list of accepted answers (a match with any counts).
**Missing ground truth** (``None``, ``""``, ``[]``) is not graded: ``grade`` returns
``CheckResult(correct=None, reason="ungraded: ground_truth is missing")`` and ``check`` returns
``None``, never a silent ``False``; pass ``missing="raise"`` to get a ``ValueError`` naming
``ground_truth`` instead. An empty or answer-less completion is graded ``False`` with its reason.

Time bounds: a math check is bounded by ``timeout_s`` (default 10 s) in the main thread and in
any other thread (thread pools, async servers) alike; see ``pte_rl.checkers.symbolic``. A check
that times out grades ``False`` with reason ``timeout``. Answers longer than ``max_answer_chars`` are
not parsed (graded ``False``, reason says why). Every checker is a module-level class holding plain
options: picklable, so it can travel to worker processes.
"""

from __future__ import annotations

from typing import Any

from pte_rl.checkers.base import (
    Checker,
    CheckResult,
    accepted_answers,
    clean_answer,
    extract_answer,
    last_boxed,
    strip_reasoning,
)
from pte_rl.checkers.symbolic import MathChecker
from pte_rl.checkers.text import NumberChecker, QAChecker, normalize_qa, parse_number, token_f1
from pte_rl.errors import InputError

__all__ = [
    "CHECKERS",
    "CheckResult",
    "Checker",
    "MathChecker",
    "NumberChecker",
    "QAChecker",
    "accepted_answers",
    "clean_answer",
    "extract_answer",
    "get_checker",
    "last_boxed",
    "normalize_qa",
    "parse_number",
    "strip_reasoning",
    "token_f1",
]

# ---------------------------------------------------------------- registry


def _judge(**options: Any) -> Checker:
    from pte_rl.checkers.judge import JudgeChecker

    return JudgeChecker(**options)


CHECKERS: dict[str, Any] = {"math": MathChecker, "qa": QAChecker, "number": NumberChecker, "judge": _judge}


def get_checker(name: str, **options: Any) -> Checker:
    """A checker by name (``math``, ``qa``, ``number``, ``judge``) with its options.

    >>> get_checker("number", rel_tol=0.01)("The answer is 99.5", 100)
    True
    """
    if name not in CHECKERS:
        raise InputError(f"checker: expected one of {sorted(CHECKERS)}, got {name!r}")
    return CHECKERS[name](**options)

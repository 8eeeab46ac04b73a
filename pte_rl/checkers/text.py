"""Short-answer QA (SQuAD normalisation, token F1) and numeric checkers."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Any

from pte_rl.checkers.base import UNGRADED, Checker, CheckResult, accepted_answers, extract_answer
from pte_rl.errors import InputError

# ---------------------------------------------------------------- short-answer QA

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation) | {"‘", "’", "“", "”", "–", "—", "…", "°"}


def normalize_qa(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation, drop articles (a, an, the), squeeze spaces.

    >>> normalize_qa("The  Coast Guard.")
    'coast guard'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 of normalised texts: ``2 P R / (P + R)`` over the multiset of shared tokens.

    >>> round(token_f1("Professor Michio Sugeno", "Michio Sugeno"), 3)   # P = 2/3, R = 1
    0.8
    """
    pred_tokens, gold_tokens = normalize_qa(prediction).split(), normalize_qa(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    shared = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(pred_tokens), shared / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


class QAChecker(Checker):
    """Short answers: normalised exact match, or token F1 >= ``f1_threshold``, with any accepted answer.

    ``contains=True`` also accepts a prediction that holds a normalised accepted answer as a
    whole-word span ("It was Michio Sugeno in 2010" for "Michio Sugeno").
    """

    name = "qa"

    def __init__(
        self, *, f1_threshold: float = 0.8, contains: bool = False, missing: str = "ungraded"
    ) -> None:
        super().__init__(missing=missing)
        if not 0.0 < f1_threshold <= 1.0:
            raise InputError(f"f1_threshold: expected a number in (0, 1], got {f1_threshold!r}")
        self.f1_threshold, self.contains = float(f1_threshold), bool(contains)

    def grade(self, answer_text: str | None, ground_truth: Any) -> CheckResult:
        accepted = accepted_answers(ground_truth, self.missing)
        if accepted is None:
            return UNGRADED
        extracted, method = extract_answer(answer_text)
        if extracted is None or not normalize_qa(extracted):
            return CheckResult(False, extracted, "no answer found", method)
        pred = normalize_qa(extracted)
        best, best_gold = 0.0, accepted[0]
        for gold in accepted:
            if pred == normalize_qa(gold):
                return CheckResult(True, extracted, "exact match (normalised)", method, gold)
            if self.contains and normalize_qa(gold) and f" {normalize_qa(gold)} " in f" {pred} ":
                return CheckResult(True, extracted, "contains the accepted answer", method, gold)
            f1 = token_f1(extracted, gold)
            if f1 > best:
                best, best_gold = f1, gold
        if best >= self.f1_threshold:
            return CheckResult(
                True, extracted, f"token F1 {best:.3f} >= {self.f1_threshold}", method, best_gold
            )
        return CheckResult(
            False, extracted, f"best token F1 {best:.3f} < {self.f1_threshold} (vs {best_gold!r})", method
        )


# ---------------------------------------------------------------- numbers

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_FRACTION_TOKEN = re.compile(rf"({_NUMBER})\s*/\s*({_NUMBER})|({_NUMBER})")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{([^{}]*)\}|(\d))\s*(?:\{([^{}]*)\}|(\d))")
_TIMES_TEN = re.compile(rf"({_NUMBER})\s*(?:\\times|\\cdot|x|\*)\s*10\s*\^\s*\{{?\s*([-+]?\d+)\s*\}}?")


def strip_decorations(text: str) -> str:
    """Remove what is not part of a number: $, %, degrees, thin spaces, thousands separators."""
    text = text.replace("\\!", "").replace("{,}", ",").replace("\\,", "").replace("\\ ", " ")
    text = re.sub(r"\\?\$|\\?%|\^\s*\{?\\circ\}?|°|\\circ|\\left|\\right", "", text)
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)


def parse_number(text: Any) -> float | None:
    """The number an answer states: the whole text if it is one (``\\frac{3}{4}``, ``-1,234.5``,
    ``6.72\\times10^{-5}``, ``1\\frac{4}{5}``, ``$18.90``, ``40%`` -> 40), else its last number; ``None`` if none.

    >>> parse_number("\\\\$1,234.50"), parse_number("\\\\dfrac{3}{4}"), parse_number("about 7 apples")
    (1234.5, 0.75, 7.0)
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str):
        return None
    text = strip_decorations(text)
    mixed = re.fullmatch(r"\s*(-?)(\d+)\s*\\[dt]?frac\s*\{(\d+)\}\s*\{(\d+)\}\s*", text)
    if mixed and int(mixed.group(4)) != 0:
        value = int(mixed.group(2)) + int(mixed.group(3)) / int(mixed.group(4))
        return -value if mixed.group(1) else value
    text = _LATEX_FRAC.sub(lambda m: f"({m.group(1) or m.group(2)})/({m.group(3) or m.group(4)})", text)
    text = _TIMES_TEN.sub(lambda m: f"{m.group(1)}e{m.group(2)}", text)
    text = re.sub(r"\((" + _NUMBER + r")\)", r"\1", text)
    tokens = list(_FRACTION_TOKEN.finditer(text))
    if not tokens:
        return None
    last = tokens[-1]
    if last.group(3) is not None:
        return float(last.group(3))
    denominator = float(last.group(2))
    return float(last.group(1)) / denominator if denominator != 0 else None


class NumberChecker(Checker):
    """Numbers within a tolerance: correct iff ``|x - y| <= max(rel_tol * |y|, abs_tol)``.

    ``x`` is the number in the extracted answer (its last number when it is a phrase), ``y`` the gold.
    A gold that is not a number raises ``ValueError`` naming ``ground_truth`` (a data error).
    """

    name = "number"

    def __init__(self, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9, missing: str = "ungraded") -> None:
        super().__init__(missing=missing)
        if rel_tol < 0 or abs_tol < 0 or not math.isfinite(rel_tol) or not math.isfinite(abs_tol):
            raise InputError(
                f"rel_tol/abs_tol: expected finite non-negative numbers, got {rel_tol!r}, {abs_tol!r}"
            )
        self.rel_tol, self.abs_tol = float(rel_tol), float(abs_tol)

    def grade(self, answer_text: str | None, ground_truth: Any) -> CheckResult:
        accepted = accepted_answers(ground_truth, self.missing)
        if accepted is None:
            return UNGRADED
        golds = []
        for gold in accepted:
            value = parse_number(gold)
            if value is None:
                raise InputError(f"ground_truth: expected a number, got {gold!r}")
            golds.append((gold, value))
        extracted, method = extract_answer(answer_text)
        value = parse_number(extracted) if extracted is not None else None
        if value is None:
            return CheckResult(False, extracted, "no number found in the answer", method)
        for gold, target in golds:
            if abs(value - target) <= max(self.rel_tol * abs(target), self.abs_tol):
                return CheckResult(
                    True, extracted, f"equal within tolerance: {value:g} vs {target:g}", method, gold
                )
        nearest = min(golds, key=lambda g: abs(value - g[1]))
        return CheckResult(
            False,
            extracted,
            f"not equal: {value:g} vs {nearest[1]:g} (rel_tol={self.rel_tol}, abs_tol={self.abs_tol})",
            method,
        )

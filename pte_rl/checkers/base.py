"""Answer extraction, ground-truth handling and the checker interface shared by every checker."""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

from pte_rl.errors import InputError, InputTypeError


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on one answer: ``correct`` (``None`` = ungraded), what was extracted and why."""

    correct: bool | None
    extracted: str | None
    reason: str
    method: str = ""  # how the answer was found: answer_tag, boxed, final_line, last_line
    matched: str | None = None  # the accepted answer it matched, when correct


# ---------------------------------------------------------------- answer extraction

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox|framebox)\s*(\{|\s+[^\s${}]+)")
_FINAL = re.compile(
    r"(?:\b(?:final\s+answer|the\s+answer)(?:\*\*|__)?\s*(?:is|:)|\banswer(?:\*\*|__)?\s*:|####)\s*(?:\*\*)?:?\s*(.+)",
    re.IGNORECASE,
)


def _braced(text: str, open_index: int) -> str | None:
    """Content of the ``{...}`` group opening at ``open_index``; ``None`` if it never closes."""
    depth = 0
    for i in range(open_index, len(text)):
        if text[i] == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif text[i] == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[open_index + 1 : i]
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox``, ``\\boxed 5``), unwrapped if nested."""
    for match in reversed(list(_BOXED.finditer(text))):
        if match.group(1) == "{":
            content = _braced(text, match.start(1))
        else:
            content = match.group(1).strip()
        if content is not None:
            content = content.strip()
            nested = _BOXED.match(content)
            if (
                nested
                and nested.group(1) == "{"
                and _braced(content, nested.start(1)) == content[nested.start(1) + 1 : -1]
            ):
                return last_boxed(content)  # \boxed{\boxed{x}}
            return content
    return None


def strip_reasoning(text: str) -> str:
    """Drop ``<think>...</think>`` blocks; a closing tag without an opening one ends the reasoning
    (templates that open the block in the prompt); an unclosed ``<think>`` runs to the end."""
    text = _THINK_BLOCK.sub("", text)
    lower = text.lower()
    if "</think>" in lower:
        text = text[lower.rindex("</think>") + len("</think>") :]
    lower = text.lower()
    if "<think>" in lower:
        text = text[: lower.index("<think>")]
    return text


def clean_answer(answer: str) -> str:
    """Strip markdown emphasis, one pair of math delimiters and trailing full stops around an answer."""
    answer = answer.strip().strip("*").strip().rstrip(".").rstrip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        inner = answer[len(left) : len(answer) - len(right)]
        if (
            answer.startswith(left)
            and answer.endswith(right)
            and len(answer) >= len(left) + len(right)
            and "$" not in inner
            and not answer.startswith("\\$")
        ):
            answer = inner.strip()
            break
    return answer.rstrip(".").rstrip().strip("*").strip()


def extract_answer(text: str | None) -> tuple[str | None, str]:
    """The final answer in a completion and how it was found: ``answer_tag``, ``boxed``,
    ``final_line`` or ``last_line`` (the order of precedence; see :mod:`pte_rl.checkers`), or ``empty``.

    >>> extract_answer("<think>maybe 3</think>So $x = \\\\boxed{\\\\frac{1}{2}}$.")
    ('\\\\frac{1}{2}', 'boxed')
    >>> extract_answer("Work...\\nThe answer is 42.")
    ('42', 'final_line')
    """
    if not text or not text.strip():
        return None, "empty"
    text = strip_reasoning(text)
    tags = _ANSWER_TAG.findall(text)
    if tags:
        boxed = last_boxed(tags[-1])
        return (boxed if boxed is not None else clean_answer(tags[-1])), "answer_tag"
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed, "boxed"
    finals = _FINAL.findall(text)
    if finals and clean_answer(finals[-1]):
        return clean_answer(finals[-1]), "final_line"
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None, "empty"
    return clean_answer(lines[-1]), "last_line"


# ---------------------------------------------------------------- ground truth


def accepted_answers(ground_truth: Any, missing: str) -> list[str] | None:
    """Ground truth -> list of accepted answer strings; ``None`` when missing (None, NaN, blank, [])
    and ``missing="ungraded"``; ``ValueError`` naming ``ground_truth`` when ``missing="raise"``."""
    if isinstance(ground_truth, str | numbers.Real) and not isinstance(ground_truth, bool):
        values = [ground_truth]
    elif isinstance(ground_truth, list | tuple):
        values = list(ground_truth)
    elif ground_truth is None:
        values = []
    else:
        raise InputTypeError(
            f"ground_truth: expected a string, a number or a list of them, got {type(ground_truth).__name__}"
        )
    accepted = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | numbers.Real):
            raise InputTypeError(f"ground_truth: expected strings or numbers in the list, got {value!r}")
        if isinstance(value, numbers.Real) and not isinstance(value, int) and math.isnan(value):
            continue  # a table's empty cell: missing, like None
        if str(value).strip():
            accepted.append(str(value).strip())
    if not accepted:
        if missing == "raise":
            raise InputError(
                "ground_truth: missing (None, empty string or empty list); nothing to grade against"
            )
        return None
    return accepted


UNGRADED = CheckResult(None, None, "ungraded: ground_truth is missing")


class Checker:
    """Base class: ``checker(answer_text, ground_truth) -> bool | None``; subclasses implement ``grade``."""

    name = "checker"

    def __init__(self, *, missing: str = "ungraded") -> None:
        if missing not in ("ungraded", "raise"):
            raise InputError(f"missing: expected 'ungraded' or 'raise', got {missing!r}")
        self.missing = missing

    def grade(self, answer_text: str | None, ground_truth: Any) -> CheckResult:
        raise NotImplementedError

    def check(self, answer_text: str | None, ground_truth: Any) -> bool | None:
        """``True``/``False``; ``None`` when the ground truth is missing (ungraded)."""
        return self.grade(answer_text, ground_truth).correct

    __call__ = check

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"

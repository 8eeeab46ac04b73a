"""Math answers through math-verify (sympy), bounded in time in any thread.

    correct  iff  the extracted answer and a gold answer are equal as mathematics (math-verify's
                  parse + verify: numbers, fractions, intervals, sets, matrices, expressions,
                  equations), or equal as normalised text (words, choice letters).

Time bound. math-verify's own timeouts rely on ``SIGALRM`` and fail outside a process's main thread,
so they are switched off and pte_rl bounds the whole check (all parses and comparisons) itself:

  main thread      an interval timer (``signal.setitimer``) interrupts the check after ``timeout_s``;
                   a timer already running (a test timeout, say) is put back with its remaining time.
  other threads    the check runs in a daemon watchdog thread, abandoned after ``timeout_s``; Python
                   cannot kill a thread, so an overrunning check finishes in the background and its
                   result is dropped.

Worker processes run checks in their own main thread, so they take the first path. A check that
times out is graded ``False`` with reason ``timeout``. math-verify's parser warms up lazily: the first
parse of each new kind of expression in a process is slower (tenths of a second; seconds on an
overloaded machine). The first check in a process imports math-verify and parses a few fixed answers
of the common shapes outside the bound; the default bound stays generous for the rest.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from pte_rl.checkers.base import (
    UNGRADED,
    Checker,
    CheckResult,
    accepted_answers,
    clean_answer,
    extract_answer,
)
from pte_rl.checkers.text import strip_decorations
from pte_rl.errors import InputError

_PMATRIX_COLUMN = re.compile(r"\\begin\{[pb]matrix\}((?:(?!\\end|&).)*)\\end\{[pb]matrix\}", re.DOTALL)
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_DOLLAR = re.compile(r"(?<!\\)\$")  # an unescaped $: math in prose
_PROSE = re.compile(r"[A-Za-z]{2,}[,;:]?\s+[A-Za-z]{2,}")  # two words in a row
_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}")


def _normalise_math(answer: str) -> str:
    """Rewrites math-verify lacks: a column vector as the tuple of its entries; stray delimiters."""
    answer = clean_answer(answer)
    return _PMATRIX_COLUMN.sub(_column_as_tuple, answer)


def _column_as_tuple(match: re.Match) -> str:
    return "(" + ", ".join(entry.strip() for entry in match.group(1).split("\\\\")) + ")"


def _normalise_text(answer: str) -> str:
    """String form for answers sympy cannot compare (words, choices): wrappers, spaces, case off."""
    answer = _TEXT_WRAPPERS.sub(r"\1", strip_decorations(clean_answer(answer)))
    answer = re.sub(r"\\[,;:! ]|\\(?:left|right)|\s+", "", answer)
    answer = answer.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    answer = answer.strip(".").lower()
    return answer[1:-1] if re.fullmatch(r"\([a-z]\)", answer) else answer


class _DropTimeoutDisabled(logging.Filter):
    """math-verify warns that its own timeout is off; here that is on purpose (module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


_FILTER = _DropTimeoutDisabled()


# Fixed, simple answers of the common shapes: parsing them once warms math-verify's parser (its
# ANTLR prediction cache) outside any time bound, so the bound is spent on the answer, not on warm-up.
_WARM_UP = ("\\frac{1}{2}", "[1, 2)", "(1, 2)", "x^2 + 2\\sqrt{3}", "x = 5", "\\{1, 2\\}", "3\\pi")
_WARM = threading.Lock()
_warmed = False


def _import_math_verify() -> Any:
    """Import math-verify (seconds: sympy) and warm its parser, outside any time bound (once per
    process), and quieten its timeout warning."""
    global _warmed
    import math_verify

    with _WARM:
        if not _warmed:
            for name in ("math_verify.parser", "math_verify.grader"):
                logging.getLogger(name).addFilter(_FILTER)
            for answer in _WARM_UP:
                math_verify.parse("\\boxed{" + answer + "}", _extraction_config(), parsing_timeout=None)
            _warmed = True
    return math_verify


def _extraction_config() -> list:
    """What math-verify looks for: LaTeX (a \\boxed{} first), then plain expressions."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


class MathChecker(Checker):
    """Math answers, equal as mathematics (math-verify) or as normalised text.

    Options: ``timeout_s`` bounds one check (module docstring); ``max_answer_chars`` the length of an
    answer worth parsing; ``float_rounding`` the decimals math-verify compares floats at;
    ``text_first``: equal normalised text settles it before sympy is asked (fast); with ``False``
    math-verify is asked first and equal text is the fallback (what the gold-answer benchmark uses).
    """

    name = "math"

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        max_answer_chars: int = 1000,
        float_rounding: int = 6,
        text_first: bool = True,
        missing: str = "ungraded",
    ) -> None:
        super().__init__(missing=missing)
        if not timeout_s > 0:
            raise InputError(f"timeout_s: expected a positive number of seconds, got {timeout_s!r}")
        self.timeout_s, self.max_answer_chars = float(timeout_s), int(max_answer_chars)
        self.float_rounding, self.text_first = int(float_rounding), bool(text_first)

    def grade(self, answer_text: str | None, ground_truth: Any) -> CheckResult:
        accepted = accepted_answers(ground_truth, self.missing)
        if accepted is None:
            return UNGRADED
        extracted, method = extract_answer(answer_text)
        if extracted is None or not extracted.strip():
            return CheckResult(False, None, "no answer found", method)
        if len(extracted) > self.max_answer_chars:
            reason = f"answer longer than {self.max_answer_chars} characters, not parsed"
            return CheckResult(False, extracted[:80] + "...", reason, method)
        text = _normalise_text(extracted)
        same_text = next((g for g in accepted if text and _normalise_text(g) == text), None)
        if same_text is not None and self.text_first:
            return CheckResult(True, extracted, "same answer as text (normalised)", method, same_text)
        _import_math_verify()
        args = (extracted, accepted, method, self.float_rounding)
        verdict = bounded_call(_math_equal, args, self.timeout_s)
        if verdict is not None and verdict[0] is not None:
            return CheckResult(True, extracted, verdict[1], method, verdict[0])
        if same_text is not None:
            sympy_says = "timed out" if verdict is None else verdict[1]
            reason = f"same answer as text (normalised); math-verify: {sympy_says}"
            return CheckResult(True, extracted, reason, method, same_text)
        if verdict is None:
            return CheckResult(False, extracted, f"timeout: no verdict within {self.timeout_s:g} s", method)
        return CheckResult(False, extracted, verdict[1], method)


def _math_equal(
    extracted: str, accepted: list[str], method: str, float_rounding: int
) -> tuple[str | None, str]:
    """(the accepted answer math-verify finds equal, or None; the reason). Unbounded: see bounded_call."""
    from math_verify import parse, verify

    config = _extraction_config()
    # A last line in prose ("so the total is $12$ apples"): math-verify finds the math in it;
    # anything else (a boxed, tagged or announced answer, or a bare formula line) is the answer itself.
    prose = method == "last_line" and bool(
        _PROSE.search(_LATEX_COMMAND.sub(" ", extracted)) or _DOLLAR.search(extracted)
    )
    source = extracted if prose else "\\boxed{" + _normalise_math(extracted) + "}"
    predicted = parse(source, config, parsing_timeout=None)
    if not predicted:
        return None, f"math-verify could not parse the answer {extracted!r}"
    shown = []
    for gold in accepted:
        parsed_gold = parse("\\boxed{" + _normalise_math(gold) + "}", config, parsing_timeout=None)
        if not parsed_gold:
            shown.append(f"unparsed {gold!r}")
            continue
        if verify(parsed_gold, predicted, float_rounding=float_rounding, timeout_seconds=None):
            return gold, "equivalent (math-verify)"
        shown.append(f"{parsed_gold[0]}")
    return None, f"not equivalent: answer parsed as {predicted[0]}, gold as {' | '.join(shown)}"


class _Timeout(BaseException):
    """Raised by the interval timer; a BaseException, so sympy's ``except Exception`` cannot swallow it."""


def _raise_timeout(signum: int, frame: Any) -> None:
    raise _Timeout


def bounded_call(function: Callable[..., Any], args: tuple, timeout_s: float) -> Any:
    """``function(*args)``, or ``None`` if it takes longer than ``timeout_s`` (module docstring).

    Exceptions of ``function`` propagate to the caller, from either path.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return _in_watchdog(function, args, timeout_s)
    previous_handler = signal.signal(signal.SIGALRM, _raise_timeout)
    previous_delay, _ = signal.setitimer(signal.ITIMER_REAL, timeout_s)
    start = time.monotonic()
    try:
        try:
            return function(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        return None
    finally:
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:  # someone else's timer: it keeps its remaining time
            signal.setitimer(signal.ITIMER_REAL, max(previous_delay - (time.monotonic() - start), 1e-3))


def _in_watchdog(function: Callable[..., Any], args: tuple, timeout_s: float) -> Any:
    """``function(*args)`` in a daemon thread; its result, or ``None`` after ``timeout_s``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = function(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, re-raised below
            box["error"] = exc

    worker = threading.Thread(target=target, name="pte_rl-math-check", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return None
    if "error" in box:
        raise box["error"]
    return box.get("result")

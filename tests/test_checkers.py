"""Correctness checkers on hand-made cases: extraction, math equivalence, QA, numbers, the LLM judge."""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from pte_rl.checkers import (
    CheckResult,
    MathChecker,
    NumberChecker,
    QAChecker,
    extract_answer,
    get_checker,
    normalize_qa,
    parse_number,
    token_f1,
)
from pte_rl.checkers.judge import JudgeChecker, parse_verdict
from pte_rl.errors import InputError, InputTypeError

# ---------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $x = \\boxed{\\frac{1}{\\sqrt{2}}}$.", ("\\frac{1}{\\sqrt{2}}", "boxed")),
        ("\\boxed{\\boxed{5}}", ("5", "boxed")),
        ("first \\boxed{2}, then \\boxed{3}", ("3", "boxed")),
        ("done: \\boxed{7} and then \\boxed{\\frac{1}{2", ("7", "boxed")),  # the last one is cut off
        ("\\fbox{12}", ("12", "boxed")),
        ("\\boxed 5", ("5", "boxed")),
        ("\\boxed{\\{1,2\\}}", ("\\{1,2\\}", "boxed")),
        ("<think>it is \\boxed{4}</think>The answer is 5.", ("5", "final_line")),
        ("reasoning from the prompt's open tag</think>\n<answer>9</answer>", ("9", "answer_tag")),
        ("<think>never closed \\boxed{4}", (None, "empty")),
        ("<answer> Paris </answer>", ("Paris", "answer_tag")),
        ("<answer>so \\boxed{6}</answer> \\boxed{8}", ("6", "answer_tag")),
        ("Work.\nThe final answer is: $\\frac{3}{4}$.", ("\\frac{3}{4}", "final_line")),
        ("**Answer:** 17", ("17", "final_line")),
        ("2+2=4\n#### 1,234", ("1,234", "final_line")),
        ("some work\n\n  x = 12  \n", ("x = 12", "last_line")),
        ("", (None, "empty")),
        (None, (None, "empty")),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# ---------------------------------------------------------------- math


@pytest.fixture(scope="module")
def math_checker() -> MathChecker:
    return MathChecker(text_first=False, timeout_s=60)  # sympy decides; generous bound for a loaded CI box


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("\\boxed{\\frac{1}{2}}", "0.5"),
        ("\\boxed{0.5}", "\\frac12"),
        ("\\boxed{\\dfrac{3}{4}}", "0.75"),
        ("<answer>[-2, 7]</answer>", "x \\in [-2,7]"),
        ("\\boxed{(-\\infty,2)\\cup(3,\\infty)}", "(-\\infty, 2) \\cup (3, \\infty)"),
        ("The answer is 32348.", "\\$32,\\!348"),
        ("\\boxed{90}", "90^\\circ"),
        (
            "\\boxed{(-\\frac{1}{3}, \\frac{2}{3}, \\frac{5}{3})}",
            "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        ),
        ("\\boxed{2(k+1)}", "2k+2"),
        ("\\boxed{x = 5}", "5"),
        ("The answer is 25.", "025"),
        ("\\boxed{1, -2}", "-2,1"),
        ("\\boxed{6.72\\times 10^{-5}}", ".0000672"),
        ("\\boxed{864}", "864 \\mbox{ inches}^2"),
    ],
)
def test_math_equivalent(math_checker, answer, gold):
    result = math_checker.grade(answer, gold)
    assert result.correct is True, result


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("\\boxed{\\frac{1}{3}}", "0.5"),
        ("\\boxed{(3,4)}", "(3,4]"),
        ("\\boxed{x^2+1}", "x^2-1"),
        ("\\boxed{41}", "42"),
    ],
)
def test_math_not_equivalent(math_checker, answer, gold):
    result = math_checker.grade(answer, gold)
    assert result.correct is False
    assert result.reason.startswith("not equivalent")


def test_math_text_answers_and_lists():
    checker = MathChecker(timeout_s=60)
    assert checker.grade("\\boxed{C}", "\\text{(C)}").reason == "same answer as text (normalised)"
    assert checker("Answer: Evelyn", "\\text{Evelyn}") is True
    assert checker("\\boxed{\\text{(B)}}", "\\text{(C)}") is False
    assert checker.grade("\\boxed{3}", ["7", "3"]).matched == "3"


def test_math_missing_and_bad_ground_truth():
    checker = MathChecker()
    for missing in (None, "", "  ", [], float("nan"), [None, ""]):
        assert checker.grade("\\boxed{1}", missing) == CheckResult(
            None, None, "ungraded: ground_truth is missing"
        )
        assert checker("\\boxed{1}", missing) is None
    with pytest.raises(InputError, match="ground_truth"):
        MathChecker(missing="raise")("\\boxed{1}", None)
    with pytest.raises(InputTypeError, match="ground_truth") as wrong_type:
        checker("\\boxed{1}", {"answer": 1})
    assert isinstance(wrong_type.value, TypeError)  # callers that catch TypeError still do


def test_math_no_answer_and_long_answer():
    checker = MathChecker()
    assert checker.grade("", "1") == CheckResult(False, None, "no answer found", "empty")
    long = checker.grade("\\boxed{" + "1+" * 600 + "1}", "1201")
    assert long.correct is False and "longer than 1000" in long.reason


def test_math_bounded_in_main_thread_and_in_other_threads(math_checker, monkeypatch):
    # A check that does not end by itself (a busy loop, capped at 5 s so that a broken bound fails
    # the test rather than hanging it) is cut off after 0.2 s in both paths.
    from pte_rl.checkers import symbolic

    stop = threading.Event()

    def endless(*args):
        end = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < end:
            pass
        return "x", "finished: the bound did not cut the check off"

    short = MathChecker(timeout_s=0.2, text_first=False)
    math_checker.grade("\\boxed{1}", "1")  # math-verify imported and warm before the patch
    monkeypatch.setattr(symbolic, "_math_equal", endless)
    started = time.monotonic()
    assert short.grade("\\boxed{x^7+3x^2-\\frac{y}{17}}", "x^7+3x^2-y/17").reason.startswith("timeout")
    assert time.monotonic() - started < 4
    results: dict[str, CheckResult] = {}

    def worker() -> None:
        results["short"] = short.grade("\\boxed{z^5-\\frac{w}{13}}", "z^5-w/13")

    thread = threading.Thread(target=worker)
    started = time.monotonic()
    thread.start()
    thread.join(120)
    stop.set()  # the abandoned watchdog thread ends
    assert results["short"].reason.startswith("timeout")
    assert time.monotonic() - started < 4
    monkeypatch.undo()
    # The real check in another thread, within the bound.
    thread = threading.Thread(target=lambda: results.update(full=math_checker.grade("\\boxed{\\frac{2}{4}}", "0.5")))
    thread.start()
    thread.join(120)
    assert results["full"].correct is True


def test_checkers_pickle_and_registry():
    for name, options in (
        ("math", {"timeout_s": 3}),
        ("qa", {"f1_threshold": 0.5}),
        ("number", {"rel_tol": 0.1}),
    ):
        checker = get_checker(name, **options)
        clone = pickle.loads(pickle.dumps(checker))
        assert type(clone) is type(checker) and vars(clone) == vars(checker)
    with pytest.raises(InputError, match="checker"):
        get_checker("regex")
    with pytest.raises(TypeError):
        get_checker("qa", tolerance=1)


# ---------------------------------------------------------------- QA


def test_normalize_and_f1_by_hand():
    assert normalize_qa("The  Coast Guard.") == "coast guard"
    assert normalize_qa("An apple, a day!") == "apple day"
    assert token_f1("Professor Michio Sugeno", "Michio Sugeno") == pytest.approx(0.8)  # P 2/3, R 1
    assert token_f1("the cat sat", "cat sat on mat") == pytest.approx(2 / 3)  # P 1, R 1/2
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("", "") == 1.0


def test_qa_checker():
    checker = QAChecker()
    assert (
        checker.grade("The answer is the Coast Guard.", ["The Coast Guard"]).reason
        == "exact match (normalised)"
    )
    assert checker("Professor Michio Sugeno", ["Michio Sugeno"]) is True  # F1 0.8 >= 0.8
    assert QAChecker(f1_threshold=0.9)("Professor Michio Sugeno", ["Michio Sugeno"]) is False
    assert checker("Sugeno", ["Michio Sugeno"]) is False  # F1 2/3
    assert checker("<answer>120000</answer>", ["120,000"]) is True
    assert checker("Lyon", ["Paris", "Lyon"]) is True
    wordy = "It was awarded to Michio Sugeno in the year 2010 by IEEE"
    assert checker(wordy, ["Michio Sugeno"]) is False
    assert QAChecker(contains=True).grade(wordy, ["Michio Sugeno"]).reason == "contains the accepted answer"
    assert checker("anything", None) is None
    with pytest.raises(ValueError, match="f1_threshold"):
        QAChecker(f1_threshold=0)


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("\\$1,234.50", 1234.5),
        ("\\dfrac{3}{4}", 0.75),
        ("\\frac34", 0.75),
        ("-7/2", -3.5),
        ("40\\%", 40.0),
        ("6.72\\times10^{-5}", 6.72e-5),
        ("1\\frac{4}{5}", 1.8),
        ("90^\\circ", 90.0),
        ("about 7 apples", 7.0),
        ("x = -3", -3.0),
        ("1e3", 1000.0),
        ("none", None),
        (17, 17.0),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == (None if value is None else pytest.approx(value))


def test_number_tolerance():
    assert NumberChecker(rel_tol=0.01)("The answer is 99.5", 100) is True  # |0.5| <= 0.01 * 100
    assert NumberChecker(rel_tol=0.01)("The answer is 98.9", 100) is False  # |1.1| > 1
    assert NumberChecker(rel_tol=0, abs_tol=0.1)("\\boxed{0.05}", 0) is True
    assert NumberChecker()("#### 70,000", "70000") is True
    assert NumberChecker()("\\boxed{70}", np.int64(70)) is True  # a table's integer column
    assert NumberChecker()("\\boxed{\\frac{1}{3}}", "0.3333333333") is True  # rel 1e-6
    assert NumberChecker()("\\boxed{0.3333}", "1/3") is False
    assert NumberChecker().grade("no digits here", 3).reason == "no number found in the answer"
    with pytest.raises(ValueError, match="ground_truth"):
        NumberChecker()("\\boxed{3}", "three")


# ---------------------------------------------------------------- LLM judge against a local stub server


class _Judge(BaseHTTPRequestHandler):
    replies: ClassVar[list] = []  # (status, content) served in order
    requests: ClassVar[list] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        status, content = type(self).replies.pop(0) if type(self).replies else (200, '{"correct": 1}')
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def judge_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    _Judge.replies, _Judge.requests = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_judge_verdicts(judge_server, monkeypatch):
    monkeypatch.setenv("PTE_RL_TEST_JUDGE_KEY", "sk-test")
    judge = get_checker(
        "judge",
        base_url=judge_server,
        model="stub",
        api_key_env="PTE_RL_TEST_JUDGE_KEY",
        timeout_s=5,
        max_retries=1,
    )
    _Judge.replies = [
        (200, '{"correct": 1}'),
        (200, '<think>hmm, "correct": 1?</think>\n```json\n{"correct": 0}\n```'),
        (200, "I cannot tell."),
        (503, ""),
        (200, '{"correct": true}'),
        (400, ""),
    ]
    assert judge.grade("The answer is Paris.", ["Paris"], question="Capital of France?").correct is True
    request = _Judge.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "stub" and "Paris" in request["body"]["messages"][1]["content"]
    assert "Capital of France?" in request["body"]["messages"][1]["content"]
    assert judge("Lyon", "Paris") is False
    unparsed = judge.grade("Lyon", "Paris")
    assert unparsed.correct is None and "no verdict" in unparsed.reason
    assert judge("Paris", "Paris") is True  # 503 retried once, then a verdict
    assert judge.grade("Paris", "Paris").reason == "ungraded: judge unavailable (HTTP 400)"
    assert len(_Judge.requests) == 6
    assert judge("Paris", None) is None and len(_Judge.requests) == 6  # no ground truth: no request


def test_judge_unreachable_is_ungraded_and_bounded():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = JudgeChecker(base_url=f"http://127.0.0.1:{port}/v1", model="stub", timeout_s=2, max_retries=0)
    result = judge.grade("Paris", "Paris")
    assert result.correct is None and result.reason.startswith("ungraded: judge unavailable")


def test_judge_configuration_and_verdict_parsing(monkeypatch):
    monkeypatch.delenv("PTE_RL_JUDGE_BASE_URL", raising=False)
    monkeypatch.delenv("PTE_RL_JUDGE_MODEL", raising=False)
    with pytest.raises(ValueError, match="base_url"):
        JudgeChecker(model="m")
    with pytest.raises(ValueError, match="model"):
        JudgeChecker(base_url="http://127.0.0.1:1/v1")
    monkeypatch.setenv("PTE_RL_JUDGE_BASE_URL", "http://127.0.0.1:1/v1/")
    monkeypatch.setenv("PTE_RL_JUDGE_MODEL", "m")
    judge = JudgeChecker()
    assert judge.base_url == "http://127.0.0.1:1/v1" and pickle.loads(pickle.dumps(judge)).model == "m"
    assert parse_verdict('{"correct": "1"}') is True
    assert parse_verdict("correct: no") is False
    assert parse_verdict('{"correct": 1} ... on reflection {"correct": 0}') is False
    assert parse_verdict("{}") is None

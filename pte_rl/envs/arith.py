"""`arith`: the embedded default task, synthetic arithmetic of graded difficulty with two tools.

Every item is one expression ``a <op> b``; the question is ``What is 37*58?`` and the answer an integer.

    level 1  inspection   x+0, x-0, x*1, x*10 with x in [10, 999]: the answer is x (or x with a 0
                          appended), so it needs no tool
    level 2  addition     a+b, a-b (a > b) with a, b in [10, 99]: needs a tool
    level 3  product      a*b with a, b in [10, 99]: needs a tool
    level 4  long product a*b with a in [100, 999], b in [10, 99]: needs a tool (off by default)

Items are generated deterministically from a seed. The item space is split once, by a hash of the
expression, into a training part and a held-out part (``eval_fraction`` of it), so the held-out split
shares no problem with any training split, whatever the seed; ``eval_seed`` picks which held-out
items are drawn and is fixed by default, so runs with different seeds are evaluated on the same items.

Two tools, equally short to call, that differ in how long their responses are::

    calculator(expression="37*58")  ->  "2146"
    python(code="37*58")            ->  a digit-free execution report (``report_lines`` lines), then "2146"

So behaviours that generate the same tokens cost different PTE. The scripted behaviours (for the
supervised warm start of the tiny policy, and as labels for what a policy does):

    direct   answer at once (level 1 only)                 the efficient path for level 1
    call     one calculator call, then the answer          the efficient path for levels >= 2
    confirm  state the answer, "Let me verify.", call      level 1: instead of answering; levels >= 2:
             the calculator again, then answer             a second call after the first result
    repeat   the same calculator call in two turns         one extra turn, re-prefilling the context
    verbose  one python call, then the answer              as many generated tokens as `call`, but the
                                                           long report stays in the context

``verbose`` is the waste a generated-token penalty cannot see (and a tool-call count cannot either);
every behaviour is as accurate as the efficient one, because the answer is always copied from the
last line of a response, and the report before it holds no digits to confuse the copy.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pte_rl.checkers import NumberChecker
from pte_rl.rollout.env import Environment, held_out
from pte_rl.tools.common import ToolInputError

SYSTEM_PROMPT = (
    "Answer the arithmetic question. Answer easy ones directly and use a tool for the rest. "
    "Give the final answer as \\boxed{N}."
)
LEVELS = {1: "inspection", 2: "addition", 3: "product", 4: "long product"}
DEFAULT_LEVEL_WEIGHTS = (0.6, 0.15, 0.25, 0.0)
# The warm start's items: more hard ones than the task draws. Copying a short tool result into the
# answer is what a small policy learns last (the answers of level-2 items have 1-3 digits), and with
# the task's weights the calculator path of level-2 items saw ~90 of 3000 chats.
SCRIPTED_LEVEL_WEIGHTS = (0.4, 0.25, 0.35, 0.0)

# A digit-free execution report, then the printed output on the last line: the number a policy must
# copy sits right before the end of the response, as the calculator's does, and the report holds no
# digit that could be copied instead. ``report_lines`` takes the first lines of the body.
_REPORT_HEADER = "--- execution report ---"
_REPORT_FOOTER = "--- end of report ---"
_ALLOWED_MODULES = (
    "math", "cmath", "fractions", "decimal", "numbers", "statistics", "random", "itertools", "functools",
    "operator", "collections", "heapq", "bisect", "array", "string", "textwrap", "re", "json", "datetime",
    "calendar", "time", "copy", "pprint", "enum", "dataclasses", "typing", "abc", "contextlib", "unicodedata",
    "difflib", "hashlib", "base", "binascii", "struct", "codecs", "io", "csv", "graphlib", "zlib", "uuid",
)
_BLOCKED_MODULES = (
    "os", "sys", "subprocess", "socket", "shutil", "signal", "threading", "multiprocessing", "ctypes",
    "urllib", "http", "ftplib", "smtplib", "ssl", "select", "pathlib", "tempfile", "importlib", "pickle",
    "marshal",
)
_REPORT_BODY = (
    "status: finished without errors",
    "interpreter: python sandbox in a fresh process",
    "stdout: captured, shown above",
    "stderr: empty",
    "warnings: none",
    "exceptions: none",
    "files written: none",
    "files read: none",
    "network access: blocked",
    "memory limit: not reached",
    "time limit: not reached",
    "processes started: none",
    "threads started: none",
    "environment variables: cleared",
    "working directory: removed after the run",
    "imports: none",
    "variables defined: none",
    "functions defined: none",
    "classes defined: none",
    "value shown: the last expression of the cell",
    "display format: plain integer",
    "rounding: none, exact integer arithmetic",
    "overflow: not possible with python integers",
    "random state: not used",
    "locale: neutral",
    "signals received: none",
    "resource warnings: none",
    "deprecation warnings: none",
    "garbage collection: not triggered",
    "open handles at exit: none",
    "exit status: clean",
    "session: closed",
    "sandbox policy follows",
    *(f"allowed module: {name}" for name in _ALLOWED_MODULES),
    *(f"blocked module: {name}" for name in _BLOCKED_MODULES),
)
MAX_REPORT_LINES = len(_REPORT_BODY)
DEFAULT_REPORT_LINES = MAX_REPORT_LINES


@dataclass(frozen=True, slots=True)
class Problem:
    """One item: ``a <op> b`` at a difficulty ``level``."""

    a: int
    op: str
    b: int
    level: int

    @property
    def expression(self) -> str:
        return f"{self.a}{self.op}{self.b}"

    @property
    def value(self) -> int:
        return evaluate(self.expression)

    @property
    def question(self) -> str:
        return f"What is {self.expression}?"

    @property
    def task_id(self) -> str:
        return f"arith-{self.expression}"

    @property
    def needs_tool(self) -> bool:
        return self.level > 1

    @classmethod
    def parse(cls, expression: str, level: int) -> Problem:
        """The item ``a<op>b`` (as in the dataset's ``expression`` column) at ``level``."""
        match = re.fullmatch(r"(\d+)([+*-])(\d+)", expression)
        if match is None or level not in LEVELS:
            raise ValueError(f"expected an expression a<op>b with op in + - * and a level in {sorted(LEVELS)}, "
                             f"got {expression!r} at level {level!r}")
        return cls(int(match.group(1)), match.group(2), int(match.group(3)), level)


# ---------------------------------------------------------------- tools (pure functions, microseconds)

_BINARY = {ast.Add: lambda x, y: x + y, ast.Sub: lambda x, y: x - y, ast.Mult: lambda x, y: x * y}


def evaluate(expression: str) -> int:
    """Exact value of an integer expression with ``+ - *``, unary minus and parentheses.

    >>> evaluate("37*58"), evaluate("-(3+4)*2")
    (2146, -14)
    """
    if not isinstance(expression, str) or len(expression) > 200:
        raise ToolInputError(f"expression: expected a string of at most 200 characters, got {expression!r}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolInputError(f"cannot parse {expression!r}: {exc.msg}") from None
    return _value(tree.body, expression)


def _value(node: ast.AST, source: str) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left, source), _value(node.right, source)
        if abs(left) > 10**12 or abs(right) > 10**12:
            raise ToolInputError(f"{source!r}: numbers above 10**12 are not supported")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand, source)
        return -inner if isinstance(node.op, ast.USub) else inner
    raise ToolInputError(f"{source!r}: only integers, + - * and parentheses are supported")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression; returns only its value.

    Args:
        expression: integers with + - * and parentheses.
    """
    return str(evaluate(expression))


def make_python_tool(report_lines: int = DEFAULT_REPORT_LINES):
    """The ``python`` tool, whose response carries ``report_lines`` lines of execution report."""
    if not 0 <= report_lines <= MAX_REPORT_LINES:
        raise ValueError(f"report_lines: expected 0..{MAX_REPORT_LINES}, got {report_lines!r}")
    report = "\n".join((_REPORT_HEADER, *_REPORT_BODY[:report_lines], _REPORT_FOOTER)) if report_lines else ""

    def python(code: str) -> str:
        """Run python code in a sandbox; returns its output and an execution report.

        Args:
            code: python code; a last bare expression is printed.
        """
        source = code.strip()
        if source.startswith("print(") and source.endswith(")"):
            source = source[len("print(") : -1]
        value = str(evaluate(source))
        return f"{report}\nstdout:\n{value}" if report else value

    return python


python = make_python_tool()


# ---------------------------------------------------------------- items and splits


def random_problem(level: int, rng: random.Random) -> Problem:
    """One uniformly drawn item of a level."""
    if level == 1:
        op, b = rng.choice((("+", 0), ("-", 0), ("*", 1), ("*", 10)))
        return Problem(rng.randint(10, 999), op, b, 1)
    if level == 2:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if rng.random() < 0.5 or a == b:
            return Problem(a, "+", b, 2)
        return Problem(max(a, b), "-", min(a, b), 2)
    if level == 3:
        return Problem(rng.randint(10, 99), "*", rng.randint(10, 99), 3)
    if level == 4:
        return Problem(rng.randint(100, 999), "*", rng.randint(10, 99), 4)
    raise ValueError(f"level: expected one of {sorted(LEVELS)}, got {level!r}")


def _weights(level_weights: Sequence[float]) -> list[float]:
    weights = [float(w) for w in level_weights]
    if len(weights) != len(LEVELS) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"level_weights: expected {len(LEVELS)} non-negative weights (levels {sorted(LEVELS)}) "
            f"with a positive sum, got {list(level_weights)!r}"
        )
    return weights


def sample_problems(
    seed: int,
    n: int,
    *,
    split: str = "train",
    level_weights: Sequence[float] = DEFAULT_LEVEL_WEIGHTS,
    eval_fraction: float = 0.2,
    exclude: frozenset[str] = frozenset(),
) -> list[Problem]:
    """``n`` distinct items of one split ("train" or "eval"), deterministic in ``seed``."""
    if split not in ("train", "eval"):
        raise ValueError(f"split: expected 'train' or 'eval', got {split!r}")
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction: expected a number in (0, 1), got {eval_fraction!r}")
    weights = _weights(level_weights)
    rng = random.Random(f"arith/{split}/{seed}")
    want_held_out = split == "eval"
    seen: set[str] = set(exclude)
    problems: list[Problem] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise ValueError(f"cannot draw {n} distinct {split} items with level_weights={weights}")
        problem = random_problem(rng.choices(sorted(LEVELS), weights)[0], rng)
        key = problem.expression
        if key in seen or held_out(key, eval_fraction, seed=None) != want_held_out:  # fixed, seed-independent
            continue
        seen.add(key)
        problems.append(problem)
    return problems


def prompt_messages(problem: Problem) -> list[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem.question}]


def _rows(problems: Sequence[Problem]) -> dict[str, list]:
    return {
        "prompt": [prompt_messages(p) for p in problems],
        "ground_truth": [str(p.value) for p in problems],
        "task_id": [p.task_id for p in problems],
        "level": [p.level for p in problems],
        "expression": [p.expression for p in problems],
        "needs_tool": [p.needs_tool for p in problems],
    }


# ---------------------------------------------------------------- the environment


def load_environment(
    seed: int = 0,
    n_train: int = 2000,
    n_eval: int = 200,
    level_weights: tuple[float, float, float, float] = DEFAULT_LEVEL_WEIGHTS,
    eval_fraction: float = 0.2,
    eval_seed: int = 0,
    report_lines: int = DEFAULT_REPORT_LINES,
    max_turns: int = 4,
) -> Environment:
    """The `arith` environment.

    Args:
        seed: draws the training items.
        n_train: training items (distinct).
        n_eval: held-out items (distinct, none in any training split).
        level_weights: how often each level 1..4 is drawn.
        eval_fraction: share of the item space held out (fixed by a hash of the expression).
        eval_seed: draws the held-out items; fixed by default so every run is evaluated on the same ones.
        report_lines: lines of execution report in each python response (0 makes it as short as the
            calculator's).
        max_turns: assistant turns per episode (repeat and confirm on hard items need 3).
    """
    from datasets import Dataset

    draw = {"level_weights": level_weights, "eval_fraction": eval_fraction}
    train = sample_problems(seed, n_train, split="train", **draw)
    eval_items = sample_problems(eval_seed, n_eval, split="eval", **draw)
    return Environment(
        name="arith",
        dataset=Dataset.from_dict(_rows(train)),
        eval_dataset=Dataset.from_dict(_rows(eval_items)),
        tools=[calculator, make_python_tool(report_lines)],
        check_answer=NumberChecker(rel_tol=0.0, abs_tol=0.0),
        system_prompt=SYSTEM_PROMPT,
        max_turns=max_turns,
    )


# The scripted behaviours (the tiny policy's warm start, and labels of what a policy did) live beside
# this file; imported last, since they build on the items and tools above.
from pte_rl.envs._arith_scripts import (  # noqa: E402
    BEHAVIOURS,
    DEFAULT_MIX,
    EFFICIENT,
    VERIFY_SENTENCE,
    classify_behaviour,
    script,
    scripted_trajectories,
)

__all__ = [
    "BEHAVIOURS", "DEFAULT_MIX", "EFFICIENT", "VERIFY_SENTENCE", "Problem", "calculator", "classify_behaviour",
    "evaluate", "load_environment", "make_python_tool", "python", "sample_problems", "script",
    "scripted_trajectories",
]

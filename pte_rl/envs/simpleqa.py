"""`simpleqa`: short factual questions (SimpleQA style) answered with ``search`` and ``visit``.

Questions come from a JSONL file (``questions``: a path, or ``simpleqa`` / ``simpleqa500`` for
``simpleqa500.jsonl`` in ``data_dir``): ``question`` and ``answer`` (one string or a list of accepted
strings). The agent searches a local corpus that the user provides (``corpus_path``: JSONL documents
with ``id``, ``text`` and optional ``title``, ``url``; see :class:`pte_rl.tools.Corpus`) with BM25, and
reads pages cut to ``visit_budget`` characters. Answers are graded by the ``qa`` checker (normalised
exact match, or token F1 >= ``f1_threshold``, against any accepted answer).

Questions are split by a hash of their task id (``simpleqa-<line>`` or the row's ``id``);
``eval_fraction`` of them are held out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pte_rl.checkers import QAChecker
from pte_rl.pricing.jsonl import FormatError
from pte_rl.rollout.env import Environment, dataset_records, default_data_dir, held_out
from pte_rl.tools import Corpus, make_search_tools

SYSTEM_PROMPT = (
    "Answer the question with a short fact. Use the search tool to find documents and the visit tool to "
    "read one. Give the final answer as \\boxed{answer}."
)
QUESTION_FILES = {"simpleqa": "simpleqa500.jsonl", "simpleqa500": "simpleqa500.jsonl"}


def load_questions(questions: str, data_dir: str | None = None) -> list[dict]:
    """Rows {question, answers (list of accepted strings), task_id} from a name or a JSONL path."""
    if questions in QUESTION_FILES:
        path = (Path(data_dir) if data_dir else default_data_dir()) / QUESTION_FILES[questions]
    else:
        path = Path(questions)
    rows = []
    for line_number, record in dataset_records(path):
        question, answer = record.get("question", record.get("problem")), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise FormatError(path, line_number, "question", f"expected a non-empty string, got {question!r}")
        answers: list[Any] = answer if isinstance(answer, list) else [answer]  # checked just below
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise FormatError(path, line_number, "answer", f"expected a string or a list of strings, got {answer!r}")
        rows.append({"question": question.strip(), "answers": [a.strip() for a in answers],
                     "task_id": f"simpleqa-{record.get('id', line_number)}"})
    return rows


def load_environment(
    corpus_path: str,
    questions: str = "simpleqa500",
    data_dir: str | None = None,
    eval_fraction: float = 0.2,
    seed: int = 0,
    n_train: int | None = None,
    n_eval: int | None = None,
    visit_budget: int = 4000,
    snippet_chars: int = 200,
    f1_threshold: float = 0.8,
    max_turns: int = 8,
) -> Environment:
    """The `simpleqa` environment.

    Args:
        corpus_path: JSONL documents to search (id, text, optional title and url).
        questions: question file: ``simpleqa500`` (in data_dir) or a .jsonl path.
        data_dir: where ``simpleqa500`` is looked up (default $PTE_RL_DATA_DIR or ../shared/data).
        eval_fraction: share of the questions held out (by task-id hash).
        seed: salts the hash split.
        n_train: keep the first n training questions (None: all).
        n_eval: keep the first n held-out questions (None: all).
        visit_budget: characters of a page that ``visit`` returns.
        snippet_chars: characters of each search result's snippet.
        f1_threshold: token F1 at which a short answer counts as correct.
        max_turns: assistant turns per episode.
    """
    from datasets import Dataset

    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction: expected a number in (0, 1), got {eval_fraction!r}")
    corpus = Corpus.from_jsonl(corpus_path)
    rows = load_questions(questions, data_dir)
    train_rows = [r for r in rows if not held_out(r["task_id"], eval_fraction, seed)][:n_train]
    eval_rows = [r for r in rows if held_out(r["task_id"], eval_fraction, seed)][:n_eval]

    def columns(items: list[dict]) -> dict[str, list]:
        return {
            "prompt": [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": r["question"]}]
                       for r in items],
            "ground_truth": [r["answers"] for r in items],
            "task_id": [r["task_id"] for r in items],
        }

    return Environment(
        name="simpleqa",
        dataset=Dataset.from_dict(columns(train_rows)),
        eval_dataset=Dataset.from_dict(columns(eval_rows)) if eval_rows else None,
        tools=make_search_tools(corpus, snippet_chars=snippet_chars, visit_budget=visit_budget),
        check_answer=QAChecker(f1_threshold=f1_threshold),
        system_prompt=SYSTEM_PROMPT,
        max_turns=max_turns,
    )

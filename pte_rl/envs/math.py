"""`math`: competition and grade-school math with a sandboxed ``python`` tool (the paper's setting).

Sources (``dataset`` and ``eval_dataset``):
  * a benchmark name, read from ``data_dir`` (``$PTE_RL_DATA_DIR``, else ``../shared/data`` beside the
    repository): ``math500``, ``aime24``, ``aime25``, ``gsm8k`` (file ``gsm8k500.jsonl``);
  * a path to a ``.jsonl`` file;
  * otherwise a Hugging Face dataset name (``HuggingFaceH4/MATH-500``), loaded with
    ``datasets.load_dataset(name, split=hf_split)`` (needs the network or a local cache).

Rows are normalised: the question is ``problem`` or ``question``; the answer is ``answer`` (AIME25's
integers become strings; GSM8K's worked solutions give the number after ``####``, thousands
separators removed), else the last ``\\boxed{}`` of ``solution``. A row without either is an error
naming the file, the line and the field. Task ids are ``<source>-<id>`` (the row's ``id`` or
``unique_id`` when present, else its line/row number).

Splits: with ``eval_dataset`` the two sources are the two splits (they must differ). Without it, one
source is split by a hash of each task id (``eval_fraction`` held out; see :func:`pte_rl.rollout.env.held_out`).
Answers are graded by the ``math`` checker (math-verify equivalence).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pte_rl.checkers import MathChecker, last_boxed
from pte_rl.errors import InputError
from pte_rl.rollout.env import Environment, dataset_records, default_data_dir, held_out
from pte_rl.tools import make_python_tool

SYSTEM_PROMPT = (
    "Solve the math problem. You can run Python code with the python tool when it helps. "
    "Put the final answer in \\boxed{}."
)
BENCHMARK_FILES = {
    "math500": "math500.jsonl", "aime24": "aime24.jsonl", "aime25": "aime25.jsonl",
    "gsm8k": "gsm8k500.jsonl", "gsm8k500": "gsm8k500.jsonl",
}
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def normalise_row(record: dict, where: str) -> tuple[str, str]:
    """(question, answer) of one benchmark row; ``where`` names it in errors (``file:line``)."""
    question = record.get("problem", record.get("question"))
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}: field 'problem' (or 'question'): expected a non-empty string, got {question!r}")
    answer: Any = record.get("answer")
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = str(answer)
    if isinstance(answer, str) and "####" in answer:
        match = _GSM8K_FINAL.search(answer)
        answer = match.group(1).replace(",", "").strip() if match else None
    if not (isinstance(answer, str) and answer.strip()):
        solution = record.get("solution")
        answer = last_boxed(solution) if isinstance(solution, str) else None
    if not (isinstance(answer, str) and answer.strip()):
        raise InputError(f"{where}: field 'answer': expected the final answer (or a 'solution' with \\boxed{{}}), "
                         f"got {record.get('answer')!r}")
    return question.strip(), answer.strip()


def load_rows(source: str, data_dir: str | None = None, hf_split: str = "test") -> tuple[str, list[dict]]:
    """(source label, rows {question, answer, task_id}) from a benchmark name, a JSONL path or a HF name."""
    directory = Path(data_dir) if data_dir else default_data_dir()
    if source in BENCHMARK_FILES:
        path = directory / BENCHMARK_FILES[source]
        if not path.is_file():
            raise FileNotFoundError(f"benchmark {source!r}: {path} does not exist (set data_dir or $PTE_RL_DATA_DIR)")
        label = source.removesuffix("500") if source == "gsm8k500" else source
    elif source.endswith((".jsonl", ".json")) or Path(source).is_file():
        path, label = Path(source), Path(source).stem
    else:
        return source.rsplit("/", 1)[-1].lower(), _hf_rows(source, hf_split)
    rows = []
    for line_number, record in dataset_records(path):
        question, answer = normalise_row(record, f"{path}:{line_number}")
        row_id = record.get("id", record.get("unique_id", line_number))
        rows.append({"question": question, "answer": answer, "task_id": f"{label}-{row_id}"})
    return label, rows


def _hf_rows(name: str, split: str) -> list[dict]:
    from datasets import load_dataset

    dataset = load_dataset(name, split=split)
    rows = []
    for index, record in enumerate(dataset):
        question, answer = normalise_row(dict(record), f"{name}[{split}][{index}]")
        row_id = record.get("id", record.get("unique_id", index))
        rows.append({"question": question, "answer": answer, "task_id": f"{name.rsplit('/', 1)[-1].lower()}-{row_id}"})
    return rows


def load_environment(
    dataset: str = "math500",
    eval_dataset: str | None = None,
    data_dir: str | None = None,
    hf_split: str = "test",
    eval_fraction: float = 0.1,
    seed: int = 0,
    n_train: int | None = None,
    n_eval: int | None = None,
    python_timeout_s: float = 10.0,
    python_memory_mb: int = 512,
    python_output_budget: int = 2048,
    max_turns: int = 8,
) -> Environment:
    """The `math` environment.

    Args:
        dataset: benchmark name (math500, aime24, aime25, gsm8k), .jsonl path or Hugging Face name.
        eval_dataset: a second source as the held-out split; None splits ``dataset`` by task-id hash.
        data_dir: where benchmark names are looked up (default $PTE_RL_DATA_DIR or ../shared/data).
        hf_split: the split of a Hugging Face dataset.
        eval_fraction: share of ``dataset`` held out when there is no ``eval_dataset``.
        seed: salts the hash split.
        n_train: keep the first n training rows (None: all).
        n_eval: keep the first n held-out rows (None: all).
        python_timeout_s: wall-clock limit of one python call.
        python_memory_mb: memory limit of one python call.
        python_output_budget: bytes of output the model sees per call.
        max_turns: assistant turns per episode.
    """
    from datasets import Dataset

    label, rows = load_rows(dataset, data_dir, hf_split)
    if eval_dataset is not None:
        eval_label, eval_rows = load_rows(eval_dataset, data_dir, hf_split)
        if eval_label == label:
            raise ValueError(f"eval_dataset: {eval_dataset!r} is the training source itself; give another or None")
        train_rows = rows
    else:
        if not 0.0 < eval_fraction < 1.0:
            raise ValueError(f"eval_fraction: expected a number in (0, 1), got {eval_fraction!r}")
        train_rows = [r for r in rows if not held_out(r["task_id"], eval_fraction, seed)]
        eval_rows = [r for r in rows if held_out(r["task_id"], eval_fraction, seed)]
    train_rows = train_rows[:n_train] if n_train is not None else train_rows
    eval_rows = eval_rows[:n_eval] if n_eval is not None else eval_rows

    def columns(items: list[dict]) -> dict[str, list]:
        return {
            "prompt": [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": r["question"]}]
                       for r in items],
            "ground_truth": [r["answer"] for r in items],
            "task_id": [r["task_id"] for r in items],
        }

    return Environment(
        name="math",
        dataset=Dataset.from_dict(columns(train_rows)),
        eval_dataset=Dataset.from_dict(columns(eval_rows)) if eval_rows else None,
        tools=[make_python_tool(python_timeout_s, python_memory_mb, python_output_budget)],
        check_answer=MathChecker(),
        system_prompt=SYSTEM_PROMPT,
        max_turns=max_turns,
    )

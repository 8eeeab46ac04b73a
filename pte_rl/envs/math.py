"""`math`: competition and grade-school math with a sandboxed ``python`` tool (the paper's setting).

Sources (``dataset`` and ``eval_dataset``), each one of:
  * a path to a ``.jsonl`` (or ``.json`` lines) file;
  * a directory written by ``datasets.Dataset.save_to_disk`` (or a ``DatasetDict``'s, whose
    ``hf_split`` is read), loaded with ``datasets.load_from_disk``;
  * a Hugging Face dataset name (``HuggingFaceH4/MATH-500``, ``openai/gsm8k`` with ``hf_config:
    main``), loaded with ``datasets.load_dataset(name, hf_config, split=hf_split)``: it needs the
    network or a cache filled beforehand (one line: ``python -c "import datasets;
    datasets.load_dataset('HuggingFaceH4/MATH-500', split='test')"``); one that cannot be fetched is an
    input error saying what to download and how to pass a local file instead;
  * a benchmark name, read from ``data_dir`` (``$PTE_RL_DATA_DIR``, else ``../shared/data`` beside the
    repository) when that directory holds its file: ``math500``, ``aime24``, ``aime25``, ``gsm8k`` (file
    ``gsm8k500.jsonl``). A convenience for a prepared data directory: nothing needs those files.

Rows are normalised: the question is ``problem`` or ``question``; the answer is ``answer`` (AIME25's
integers become strings; GSM8K's worked solutions give the number after ``####``, thousands
separators removed), else the last ``\\boxed{}`` of ``solution``. A row without either is an error
naming the file, the line and the field. Task ids are ``<source>-<id>`` (the row's ``id`` or
``unique_id`` when present, else its line/row number).

Splits: with ``eval_dataset`` the two sources are the two splits (they must differ). Without it, one
source is split by a hash of each task id (``eval_fraction`` held out; see :func:`pte_rl.rollout.env.held_out`).
Answers are graded by the ``math`` checker (math-verify equivalence).

A bad source raises :class:`~pte_rl.errors.InputError` whose message starts with ``field '<option>'``
(``dataset``, ``eval_dataset``, ``hf_config``), so the recipe can name the config line that set it.
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
DEFAULT_DATASET = "HuggingFaceH4/MATH-500"
LOCAL_FORMS = "a .jsonl file, a datasets.save_to_disk directory or a Hugging Face dataset name"
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


def load_rows(source: str, data_dir: str | None = None, hf_split: str = "test", hf_config: str | None = None,
              option: str = "dataset") -> tuple[str, list[dict]]:
    """(source label, rows {question, answer, task_id}) of a source (see the module docstring).

    ``option`` is the load_environment option that named ``source``, for the error messages.
    """
    if source in BENCHMARK_FILES:
        path = (Path(data_dir) if data_dir else default_data_dir()) / BENCHMARK_FILES[source]
        if not path.is_file():
            raise InputError(f"field '{option}': the benchmark name {source!r} reads {path}, which does not exist; "
                             f"give {LOCAL_FORMS} (e.g. {DEFAULT_DATASET}) or set data_dir / $PTE_RL_DATA_DIR")
        return _file_rows(path, source.removesuffix("500") if source == "gsm8k500" else source)
    path = Path(source).expanduser()
    if path.is_dir():
        return path.name.lower(), _disk_rows(path, hf_split, option)
    if path.is_file():
        return _file_rows(path, path.stem)
    if source.endswith((".jsonl", ".json")) or source.startswith(("/", ".", "~")) or source.count("/") > 1:
        raise InputError(f"field '{option}': {source}: no such file or directory; expected {LOCAL_FORMS}")
    return source.rsplit("/", 1)[-1].lower(), _hub_rows(source, hf_split, hf_config, option)


def _file_rows(path: Path, label: str) -> tuple[str, list[dict]]:
    rows = []
    for line_number, record in dataset_records(path):
        question, answer = normalise_row(record, f"{path}:{line_number}")
        row_id = record.get("id", record.get("unique_id", line_number))
        rows.append({"question": question, "answer": answer, "task_id": f"{label}-{row_id}"})
    return label, rows


def _dataset_rows(dataset: Any, label: str, where: str) -> list[dict]:
    rows = []
    for index, record in enumerate(dataset):
        question, answer = normalise_row(dict(record), f"{where}[{index}]")
        row_id = record.get("id", record.get("unique_id", index))
        rows.append({"question": question, "answer": answer, "task_id": f"{label}-{row_id}"})
    return rows


def _disk_rows(path: Path, split: str, option: str) -> list[dict]:
    """The rows of a ``save_to_disk`` directory (a DatasetDict's ``split``)."""
    from datasets import DatasetDict, load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"field '{option}': {path}: a directory, but not one datasets.save_to_disk wrote "
                         f"({exc}); expected {LOCAL_FORMS}") from None
    if isinstance(dataset, DatasetDict):
        if split not in dataset:
            raise InputError(f"field 'hf_split': {path} holds the splits {', '.join(dataset)}, not {split!r}")
        dataset = dataset[split]
    return _dataset_rows(dataset, path.name.lower(), f"{path}[{split}]")


def _hub_rows(name: str, split: str, config: str | None, option: str) -> list[dict]:
    """The rows of a Hugging Face dataset; one that cannot be fetched says what to download."""
    from datasets import load_dataset

    try:
        dataset = load_dataset(name, config, split=split)
    except (OSError, ValueError) as exc:  # offline without a cache, no such dataset, a missing config name
        args = f"'{name}'" + (f", '{config}'" if config else "") + f", split='{split}'"
        raise InputError(
            f"field '{option}': {name!r} is no local file or directory, and the Hugging Face Hub could not give it "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); download it first where "
            f"the network is reachable: python -c \"import datasets; datasets.load_dataset({args})\" (then "
            f"HF_HUB_OFFLINE=1 reads the cache), or save it as a local file and pass that instead: "
            f"python -c \"import datasets; datasets.load_dataset({args}).to_json('{name.rsplit('/', 1)[-1]}.jsonl')\" "
            f"and --env.options.{option} {name.rsplit('/', 1)[-1]}.jsonl"
        ) from None
    return _dataset_rows(dataset, name.rsplit("/", 1)[-1].lower(), f"{name}[{split}]")


def load_environment(
    dataset: str = DEFAULT_DATASET,
    eval_dataset: str | None = None,
    data_dir: str | None = None,
    hf_split: str = "test",
    hf_config: str | None = None,
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
        dataset: a .jsonl path, a save_to_disk directory, a Hugging Face name, or a benchmark name of data_dir.
        eval_dataset: a second source as the held-out split; None splits ``dataset`` by task-id hash.
        data_dir: where benchmark names are looked up (default $PTE_RL_DATA_DIR or ../shared/data).
        hf_split: the split of a Hugging Face dataset or of a saved DatasetDict.
        hf_config: the configuration of a Hugging Face dataset (gsm8k: ``main``); None: its default.
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

    label, rows = load_rows(dataset, data_dir, hf_split, hf_config)
    if eval_dataset is not None:
        eval_label, eval_rows = load_rows(eval_dataset, data_dir, hf_split, hf_config, option="eval_dataset")
        if eval_label == label:
            raise InputError(f"field 'eval_dataset': {eval_dataset!r} is the training source itself; "
                             f"give another or null")
        train_rows = rows
    else:
        if not 0.0 < eval_fraction < 1.0:
            raise InputError(f"field 'eval_fraction': expected a number in (0, 1), got {eval_fraction!r}")
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

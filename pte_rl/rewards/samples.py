"""From one TRL reward call to the whole batch's samples: gather once, read the records, grade.

Each completion becomes a :class:`Sample` (group, task, cost, correctness). The batch is gathered from
every rank with :func:`pte_rl.rewards.distributed.gather_batch`, once per batch for all callers:

* **With the rollout's records** (the ``trajectory`` keyword): the records themselves are gathered,
  the very objects the metrics callback gathers, so the rewards and the callback share one gather.
  A sample is read from its record: group = ``task_id:<record.task_id>``, task, ``correct`` (else the
  checker on the record's final assistant text against its ``ground_truth``) and the cost. Only when a
  record cannot say everything the reward needs (no record, no ``task_id``, nothing to grade with, a
  ``group_by`` column, or the ``completion_tokens`` measure) are the sample's own columns gathered as
  well, as a second gather of that batch. Whether that happens is decided on the *gathered* records,
  so every rank decides the same.
* **Without records** (TRL's plain completions): each rank builds its rows from the columns (and, for
  the token measures, turns rebuilt with the chat template; :mod:`pte_rl.rewards.records`) and gathers
  those.

Group of a sample, in order: the ``group_by`` column when one is named; the record's ``task_id``; the
first of the ``prompt_id`` / ``group_id`` / ``task_id`` columns; a hash of the prompt (TRL repeats one
prompt per group). Task (the key of a per-task budget): the record's ``task_id``, the ``task_id``
column, else the group.

Correctness of a sample, in order: the record's ``correct`` when set; no record where records were
passed: unknown; an unfinished episode (the last assistant message still asks for tools) is
incorrect; an empty completion is incorrect; a missing ground truth (``None``, ``""``, ``[]``) is
unknown; else the checker grades the final assistant text against the ground truth (a checker that
returns ``None`` or raises leaves it unknown, with a warning).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.trajectory import Trajectory
from pte_rl.rewards import records
from pte_rl.rewards.distributed import gather_batch

logger = logging.getLogger(__name__)
NAN = float("nan")
GROUP_KEYS = ("prompt_id", "group_id", "task_id")
Checker = Callable[[str, Any], "bool | None"]


@dataclass(slots=True)
class Sample:
    """What one completion contributes to a group statistic."""

    group: str
    task: str
    cost: float
    correct: float | None
    status: str  # record | checked | unfinished | empty | no_ground_truth | checker_error | unknown
    trajectory: Trajectory | None = None  # what the cost was measured on
    rebuilt: bool = False  # the trajectory was rebuilt from TRL's plain completions (no rollout records)


@dataclass(frozen=True, slots=True)
class Row:
    """What a completion's own columns say (plain values: cheap to gather)."""

    group: str | None  # "<column>:<value>" of the group column, None without one
    prompt: str  # "prompt:<sha1 of the prompt>"
    task: str | None
    truth: Any
    text: str  # the final assistant text of the completion
    unfinished: bool
    length: float  # len(completion_ids), NaN when not given
    trajectory: Trajectory | None = None  # turns rebuilt from the completion (no records passed)


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """What a reward needs read from each sample."""

    name: str
    measure: str | None
    needs_correct: bool
    group_by: str = "auto"
    checker: Checker | None = None
    cost_model: CostModel | None = None
    tokenizer: Any = None
    tools: list[Any] | None = None


def batch_samples(
    spec: SampleSpec,
    prompts: Sequence[Any] | None,
    completions: Sequence[Any],
    completion_ids: Sequence[Sequence[int]] | None,
    kwargs: dict[str, Any],
) -> tuple[list[Sample], int]:
    """The samples of the whole batch (all ranks, rank order) and this rank's offset in it."""
    given = kwargs.get("trajectory")
    if given is not None:
        if len(given) != len(completions):
            raise ValueError(f"trajectory: expected {len(completions)} records (one per completion), got {len(given)}")
        merged, offset = gather_batch(list(given))
        trajs = [_parse(record, i) for i, record in enumerate(merged)]
        rows: list[Row | None] = [None] * len(trajs)
        if _needs_columns(spec, trajs):
            rows = list(gather_batch(local_rows(spec, prompts, completions, completion_ids, kwargs, None))[0])
        pairs = enumerate(zip(trajs, rows, strict=True))
        return [_sample(spec, i, traj, row, True) for i, (traj, row) in pairs], offset
    rebuilt = None
    if spec.measure not in (None, "completion_tokens"):
        rebuilt, source = records.trajectories(prompts, completions, completion_ids, kwargs, spec.tokenizer, spec.tools)
        if spec.measure == "pte" and source == "none":
            raise ValueError(
                f"{spec.name}: PTE needs the rollout's `trajectory` records, or a tokenizer to rebuild the "
                "turns from the completions (pass tokenizer= to the reward or to load_preset)"
            )
    local = local_rows(spec, prompts, completions, completion_ids, kwargs, rebuilt)
    merged_rows, offset = gather_batch(local)
    return [_sample(spec, i, row.trajectory, row, False) for i, row in enumerate(merged_rows)], offset


def _parse(record: Any, index: int) -> Trajectory | None:
    if record is None or isinstance(record, Trajectory):
        return record
    try:
        return Trajectory.from_dict(record)
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("trajectory[%d]: not a Trajectory.to_dict() record (%s); sample left unscored", index, exc)
        return None


def _needs_columns(spec: SampleSpec, trajs: Sequence[Trajectory | None]) -> bool:
    """Whether the records alone cannot say what ``spec`` needs (decided on the gathered records)."""
    if spec.group_by != "auto" or spec.measure == "completion_tokens":
        return True
    for traj in trajs:
        if traj is None or traj.task_id is None:
            return True
        if spec.needs_correct and traj.correct is None and (_missing(traj.ground_truth) or not traj.messages):
            return True
    return False


def local_rows(
    spec: SampleSpec,
    prompts: Sequence[Any] | None,
    completions: Sequence[Any],
    completion_ids: Sequence[Sequence[int]] | None,
    kwargs: dict[str, Any],
    rebuilt: Sequence[Trajectory | None] | None,
) -> list[Row]:
    """One :class:`Row` per local completion."""
    out = []
    for i, completion in enumerate(completions):
        prompt = prompts[i] if prompts is not None else None
        ids = completion_ids[i] if completion_ids is not None else None
        text, unfinished = records.final_text(None, completion)
        task = records.column(kwargs, "task_id", i)
        out.append(
            Row(
                group=_group_column(kwargs, i, spec.group_by),
                prompt=_prompt_hash(prompt),
                task=None if task is None else str(task),
                truth=records.column(kwargs, "ground_truth", i),
                text=text,
                unfinished=unfinished,
                length=NAN if ids is None else float(len(ids)),
                trajectory=rebuilt[i] if rebuilt is not None else None,
            )
        )
    return out


def _group_column(kwargs: dict[str, Any], i: int, group_by: str) -> str | None:
    for key in GROUP_KEYS if group_by == "auto" else (group_by,):
        value = records.column(kwargs, key, i)
        if value is not None:
            return f"{key}:{value}"
    if group_by != "auto":
        raise ValueError(f"group_by={group_by!r}: the reward function was not given a {group_by!r} column")
    return None


def _prompt_hash(prompt: Any) -> str:
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)
    return "prompt:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


def _sample(spec: SampleSpec, i: int, traj: Trajectory | None, row: Row | None, from_records: bool) -> Sample:
    if spec.group_by != "auto" and row is not None and row.group is not None:
        group = row.group
    elif traj is not None and traj.task_id is not None:
        group = f"task_id:{traj.task_id}"
    elif row is not None:
        group = row.group or row.prompt
    else:
        group = f"sample:{i}"  # unreachable: a record without task_id makes the columns gathered
    if traj is not None and traj.task_id is not None:
        task = str(traj.task_id)
    else:
        task = row.task if row is not None and row.task is not None else group
    length = row.length if row is not None else None
    cost = NAN if spec.measure is None else records.measure(traj, length, spec.measure, spec.cost_model)
    correct, status = _correctness(spec, i, traj, row, from_records)
    return Sample(group, task, cost, correct, status, traj, not from_records and traj is not None)


def _correctness(
    spec: SampleSpec, i: int, traj: Trajectory | None, row: Row | None, from_records: bool
) -> tuple[float | None, str]:
    if traj is not None and traj.correct is not None:
        return float(bool(traj.correct)), "record"
    if not spec.needs_correct or (from_records and traj is None):
        return None, "unknown"
    text, unfinished = _final_text(traj, row)
    if unfinished:
        return 0.0, "unfinished"
    if not text.strip():
        return 0.0, "empty"
    truth = traj.ground_truth if traj is not None and not _missing(traj.ground_truth) else None
    if truth is None and row is not None and not _missing(row.truth):
        truth = row.truth
    if truth is None:
        return None, "no_ground_truth"
    return _check(spec, i, text, truth)


def _final_text(traj: Trajectory | None, row: Row | None) -> tuple[str, bool]:
    if traj is not None and traj.messages:
        return records.final_text(traj, None)
    text, unfinished = (row.text, row.unfinished) if row is not None else ("", False)
    return text, unfinished or bool(traj is not None and traj.turns and traj.turns[-1].tool_calls)


def _check(spec: SampleSpec, i: int, text: str, truth: Any) -> tuple[float | None, str]:
    if spec.checker is None:
        raise ValueError(
            f"{spec.name}: a sample needs grading but no checker was given (pass checker= "
            "to the reward or to load_preset, e.g. the environment's check_answer)"
        )
    try:
        verdict = spec.checker(text, truth)
    except Exception as exc:  # noqa: BLE001 - a checker failure leaves one sample unscored, loudly
        logger.warning("%s: checker raised on completion %d (%s: %s); unscored", spec.name, i, type(exc).__name__, exc)
        return None, "checker_error"
    if verdict is None:
        return None, "no_ground_truth"
    return float(bool(verdict)), "checked"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple) and len(value) == 0)


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the finite values, None when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None

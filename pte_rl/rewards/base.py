"""The machinery every pte_rl reward function shares: samples, correctness, the gather, logging.

A reward function is a picklable object called the way TRL calls reward functions::

    reward(prompts=..., completions=..., completion_ids=..., **kwargs) -> list[float | None]

Per call it (1) turns each local completion into a :class:`Sample` (group, task, cost, correctness),
(2) gathers the samples of all processes (:mod:`pte_rl.rewards.distributed`), (3) scores the whole
batch, (4) logs batch-wide metrics through TRL's ``log_metric`` (identical on every rank, so TRL's
cross-process average is the batch value), and (5) returns its own slice.

Correctness of a sample, in order: the record's ``correct`` when set; an unfinished episode (the last
assistant message still asks for tools) is incorrect; an empty completion (no assistant text, no call)
is incorrect; a missing ground truth (``None``, ``""``, ``[]``) is *unknown*; else the checker grades
the final assistant text against the ground truth (a checker that returns ``None`` or raises leaves it
unknown, with a warning). A sample whose correctness is unknown where the reward needs it is
*unscored*: the reward returns ``None`` for it (TRL turns that into NaN and, when every reward of the
row is NaN, gives it zero advantage), and ``reward/<name>_unscored`` counts such samples per batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pte_rl.pricing.cost import CostModel
from pte_rl.rewards import records
from pte_rl.rewards.distributed import gather_samples

logger = logging.getLogger(__name__)
NAN = float("nan")


@dataclass(slots=True)
class Sample:
    """What one completion contributes to a group statistic (plain values: cheap to gather)."""

    group: str
    task: str
    cost: float
    correct: float | None
    status: str  # record | checked | unfinished | empty | no_ground_truth | checker_error | unknown


def resolve_checker(checker: Callable | str | None, checker_options: dict | None) -> Callable | None:
    """A callable ``(answer_text, ground_truth) -> bool | None``, or a checker name for
    :func:`pte_rl.checkers.get_checker`."""
    if checker is None or callable(checker):
        if checker_options:
            raise ValueError("checker_options need a checker name, not a callable")
        return checker
    if isinstance(checker, str):
        from pte_rl.checkers import get_checker

        return get_checker(checker, **(checker_options or {}))
    raise ValueError(f"checker: expected a callable or a checker name, got {checker!r}")


def resolve_cost_model(cost_model: CostModel | None, gamma: float | None) -> CostModel:
    """The price of a PTE reward: ``cost_model``, or ``CostModel(gamma=gamma)`` (a shortcut for hand-built
    rewards); exactly one of the two.

    >>> resolve_cost_model(None, 0.01)
    CostModel(gamma=0.01, cache='evict', attention='paper', delta=0.0)
    """
    if cost_model is not None and gamma is not None:
        raise ValueError("cost_model: give cost_model= or the gamma= shortcut, not both")
    if cost_model is not None:
        if not isinstance(cost_model, CostModel):
            raise ValueError(f"cost_model: expected a pte_rl.pricing.cost.CostModel, got {cost_model!r}")
        return cost_model
    if gamma is None or isinstance(gamma, bool) or not isinstance(gamma, int | float):
        raise ValueError(
            "cost_model: PTE needs a price: pass cost_model= (a pte_rl.pricing.cost.CostModel, which the "
            f"recipe resolves from its pricing: section) or the gamma= shortcut; got gamma={gamma!r}"
        )
    return CostModel(gamma=float(gamma))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple) and len(value) == 0)


class GroupReward:
    """Base class: subclasses set ``measure`` and ``needs_correct`` and implement :meth:`score`."""

    measure: str | None = None

    def __init__(
        self,
        *,
        name: str,
        checker: Callable | str | None = None,
        checker_options: dict | None = None,
        tokenizer: Any = None,
        tools: list | None = None,
        group_by: str = "auto",
        group_size: int | None = None,
        cost_model: CostModel | None = None,
        gamma: float | None = None,
    ):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        if group_size is not None and (
            isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
        ):
            raise ValueError(f"group_size: expected a positive int or None, got {group_size!r}")
        if not isinstance(group_by, str):
            raise TypeError(f"group_by: expected 'auto' or a column name, got {group_by!r}")
        self.__name__ = name
        self.checker_spec = checker
        self.checker_options = dict(checker_options or {})
        self.checker = resolve_checker(checker, checker_options)
        self.tokenizer = tokenizer
        self.tools = tools
        self.group_by = group_by
        self.group_size = group_size
        self.cost_model = resolve_cost_model(cost_model, gamma) if self.measure == "pte" else None

    @property
    def needs_correct(self) -> bool:
        return True

    # ---------------------------------------------------------------- the TRL call
    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        if completions is None:
            raise ValueError(f"{self.__name__}: called without completions")
        n = len(completions)
        local = self.samples(prompts, completions, completion_ids, kwargs)
        merged, offset = gather_samples(local)
        if self.group_size is not None:
            for index, sample in enumerate(merged):
                sample.group = f"position:{index // self.group_size}"
        rewards, metrics = self.score(merged)
        rewards = [None if r is None or not math.isfinite(r) else float(r) for r in rewards]
        metrics[f"reward/{self.__name__}_unscored"] = float(sum(r is None for r in rewards))
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            for key, value in metrics.items():
                if value is not None and math.isfinite(value):
                    log_metric(key, float(value))
        log_extra = kwargs.get("log_extra")
        if log_extra is not None and self.measure is not None:
            log_extra(
                f"{self.__name__}:{self.measure}",
                [None if math.isnan(s.cost) else round(s.cost, 3) for s in local],
            )
        return rewards[offset : offset + n]

    def samples(self, prompts, completions, completion_ids, kwargs) -> list[Sample]:
        needs_trajectory = self.measure not in (None, "completion_tokens")
        trajs, source = (
            records.trajectories(prompts, completions, completion_ids, kwargs, self.tokenizer, self.tools)
            if needs_trajectory or "trajectory" in kwargs
            else ([None] * len(completions), "none")
        )
        if self.measure == "pte" and source == "none":
            raise ValueError(
                f"{self.__name__}: PTE needs the rollout's `trajectory` records, or a tokenizer to rebuild "
                "the turns from the completions (pass tokenizer= to the reward factory or to load_preset)"
            )
        out = []
        for i, completion in enumerate(completions):
            traj = trajs[i]
            prompt = prompts[i] if prompts is not None else None
            ids = completion_ids[i] if completion_ids is not None else None
            group = records.group_key(kwargs, i, prompt, traj, self.group_by)
            task_value = records.column(kwargs, "task_id", i)
            task = (
                str(task_value)
                if task_value is not None
                else (str(traj.task_id) if traj is not None and traj.task_id is not None else group)
            )
            cost = NAN if self.measure is None else records.measure(traj, ids, self.measure, self.cost_model)
            correct, status = self.correctness(i, traj, completion, kwargs, source)
            out.append(Sample(group, task, cost, correct, status))
        return out

    def correctness(self, i: int, traj, completion, kwargs, source: str) -> tuple[float | None, str]:
        if traj is not None and traj.correct is not None:
            return float(bool(traj.correct)), "record"
        if not self.needs_correct:
            return None, "unknown"
        if source == "records" and traj is None:
            return None, "unknown"  # a record that could not be read: nothing to grade
        text, unfinished = records.final_text(traj, completion)
        if unfinished:
            return 0.0, "unfinished"
        if not text.strip():
            return 0.0, "empty"
        truth = records.column(kwargs, "ground_truth", i)
        if _missing(truth) and traj is not None:
            truth = traj.ground_truth
        if _missing(truth):
            return None, "no_ground_truth"
        if self.checker is None:
            raise ValueError(
                f"{self.__name__}: a sample needs grading but no checker was given (pass checker= "
                "to the reward factory or to load_preset, e.g. the environment's check_answer)"
            )
        try:
            verdict = self.checker(text, truth)
        except Exception as exc:  # noqa: BLE001 - a checker failure leaves one sample unscored, loudly
            logger.warning(
                "%s: checker raised on completion %d (%s: %s); unscored",
                self.__name__,
                i,
                type(exc).__name__,
                exc,
            )
            return None, "checker_error"
        if verdict is None:
            return None, "no_ground_truth"
        return float(bool(verdict)), "checked"

    # ---------------------------------------------------------------- subclasses
    def score(self, samples: list[Sample]) -> tuple[list[float | None], dict[str, float]]:
        raise NotImplementedError

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((low, high) for correct rollouts, (low, high) for incorrect ones)`` of this reward's output;
        the preset loader uses them to check that every correct rollout outranks every incorrect one."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The resolved options, serialisable (saved with the run)."""
        out: dict[str, Any] = {"group_by": self.group_by, "group_size": self.group_size}
        if self.checker_spec is not None:
            out["checker"] = (
                self.checker_spec if isinstance(self.checker_spec, str) else _callable_name(self.checker)
            )
        if self.tokenizer is not None:
            out["tokenizer"] = getattr(self.tokenizer, "name_or_path", type(self.tokenizer).__name__)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r}, {self.config()})"


def _callable_name(func: Any) -> str:
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__
    return f"{module}.{name}" if module else name


def mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None

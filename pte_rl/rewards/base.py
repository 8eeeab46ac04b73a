"""The machinery every built-in pte_rl reward shares: options, the TRL call, logging.

A reward is a picklable object called the way TRL calls reward functions::

    reward(prompts=..., completions=..., completion_ids=..., **kwargs) -> list[float | None]

Per call it (1) turns the whole batch, gathered once from every process, into samples (group, task,
cost, correctness; :mod:`pte_rl.rewards.samples`), (2) scores the whole batch, (3) logs its own
batch-wide ``reward/<name>_*`` metrics through TRL's ``log_metric`` (identical on every rank, so TRL's
cross-process average is the batch value) and (4) returns its own slice. A sample whose correctness
is unknown where the reward needs it is *unscored*: the reward returns ``None`` for it (TRL turns that
into NaN and, when every reward of the row is NaN, gives it zero advantage), and
``reward/<name>_unscored`` counts such samples per batch. ``pte/*``, ``tokens/*``, ``tools/*`` and
``patterns/*`` come from the metrics callback (pte_rl.training), which observes pte_rl's rollout; with
one exception, where there is no pte_rl rollout to observe: a PTE reward whose trajectories were
rebuilt from TRL's plain completions (TRL's own tool loop) logs the batch's ``pte/*`` summary
(:func:`pte_rl.pricing.summary.pte_summary`, the callback's own function) through ``log_metric``, and
only the first such reward of a run does (:func:`pte_rl.rollout.trl_adapter.reward_metrics_channel`).

Options every built-in reward takes (:class:`CommonOptions`): ``checker`` (a callable
``(answer_text, ground_truth) -> bool | None`` or a name for :func:`pte_rl.checkers.get_checker`),
``checker_options``, ``tokenizer`` and ``tools`` (to rebuild turns from plain completions),
``group_by`` (``auto`` or a column name) and ``group_size`` (positional groups of that size).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from pte_rl.errors import InputTypeError
from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.summary import PREFIX as PTE_PREFIX
from pte_rl.pricing.summary import pte_summary
from pte_rl.rewards.samples import Checker, Sample, SampleSpec, batch_samples

Bounds = tuple[tuple[float, float], tuple[float, float]]
Metrics = dict[str, float | None]


class CommonOptions(TypedDict, total=False):
    """The options every built-in reward takes beside its own (module docstring)."""

    checker: Checker | str | None
    checker_options: dict[str, Any] | None
    tokenizer: Any
    tools: list[Any] | None
    group_by: str
    group_size: int | None


COMMON_OPTIONS = tuple(CommonOptions.__annotations__)


def resolve_checker(checker: Checker | str | None, checker_options: dict[str, Any] | None) -> Checker | None:
    """A callable ``(answer_text, ground_truth) -> bool | None``, or a checker name for
    :func:`pte_rl.checkers.get_checker`."""
    if checker is None or callable(checker):
        if checker_options:
            raise ValueError("checker_options: need a checker name, not a callable")
        return checker
    if isinstance(checker, str):
        from pte_rl.checkers import get_checker

        named: Checker = get_checker(checker, **(checker_options or {}))
        return named
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


class GroupReward:
    """Base class: subclasses set ``measure`` (and ``needs_correct``) and implement :meth:`score`."""

    measure: str | None = None

    def __init__(
        self,
        *,
        name: str,
        checker: Checker | str | None = None,
        checker_options: dict[str, Any] | None = None,
        tokenizer: Any = None,
        tools: list[Any] | None = None,
        group_by: str = "auto",
        group_size: int | None = None,
        cost_model: CostModel | None = None,
        gamma: float | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        bad_size = isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
        if group_size is not None and bad_size:
            raise ValueError(f"group_size: expected a positive int or None, got {group_size!r}")
        if not isinstance(group_by, str):
            raise InputTypeError(f"group_by: expected 'auto' or a column name, got {group_by!r}")
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

    def spec(self) -> SampleSpec:
        return SampleSpec(
            self.__name__, self.measure, self.needs_correct, self.group_by, self.checker, self.cost_model,
            self.tokenizer, self.tools,
        )

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
        merged, offset = batch_samples(self.spec(), prompts, completions, completion_ids, kwargs)
        if self.group_size is not None:
            for index, sample in enumerate(merged):
                sample.group = f"position:{index // self.group_size}"
        scored, metrics = self.score(merged)
        rewards = [None if r is None or not math.isfinite(r) else float(r) for r in scored]
        metrics[f"reward/{self.__name__}_unscored"] = float(sum(r is None for r in rewards))
        self._log(merged[offset : offset + len(completions)], metrics, kwargs)
        self._log_pte_summary(merged, kwargs)
        return rewards[offset : offset + len(completions)]

    def _log_pte_summary(self, merged: list[Sample], kwargs: dict[str, Any]) -> None:
        """``pte/*`` of the whole batch, when this reward priced turns rebuilt from plain completions and
        owns those keys in this run (module docstring); identical on every rank (the gathered batch)."""
        log_metric = kwargs.get("log_metric")
        if log_metric is None or self.measure != "pte" or self.cost_model is None:
            return
        priced = [s for s in merged if s.rebuilt and s.trajectory is not None]
        if not priced:
            return
        from pte_rl.rollout.trl_adapter import reward_metrics_channel

        owner = f"pte_rl reward {self.__name__!r} (PTE rebuilt from completions)"
        channel = reward_metrics_channel(log_metric, lambda key: key.startswith(PTE_PREFIX), owner)
        if channel is None:
            return
        trajectories = [s.trajectory for s in priced if s.trajectory is not None]
        correct = [None if s.correct is None else s.correct >= 0.5 for s in priced]
        for key, value in pte_summary(trajectories, self.cost_model, correct).items():
            channel(key, value)

    def _log(self, local: list[Sample], metrics: Metrics, kwargs: dict[str, Any]) -> None:
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if log_metric is not None:
            for key, value in metrics.items():
                if value is not None and math.isfinite(value):
                    log_metric(key, float(value))
        log_extra: Callable[[str, list[Any]], None] | None = kwargs.get("log_extra")
        if log_extra is not None and self.measure is not None:
            costs = [None if math.isnan(s.cost) else round(s.cost, 3) for s in local]
            log_extra(f"{self.__name__}:{self.measure}", costs)

    # ---------------------------------------------------------------- subclasses
    def score(self, samples: list[Sample]) -> tuple[list[float | None], Metrics]:
        raise NotImplementedError

    def bounds(self) -> Bounds:
        """``((low, high) for correct rollouts, (low, high) for incorrect ones)`` of this reward's output;
        the preset loader uses them to check that every correct rollout outranks every incorrect one."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The resolved options, serialisable (saved with the run). Pricing is the recipe's, not here."""
        out: dict[str, Any] = {"group_by": self.group_by, "group_size": self.group_size}
        if self.checker_spec is not None:
            out["checker"] = self.checker_spec if isinstance(self.checker_spec, str) else callable_name(self.checker)
        if self.tokenizer is not None:
            out["tokenizer"] = getattr(self.tokenizer, "name_or_path", type(self.tokenizer).__name__)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r}, {self.config()})"


def callable_name(func: Any) -> str:
    """``module.qualname`` of a function or object, for the resolved config."""
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__
    return f"{module}.{name}" if module else str(name)


def groups_of(samples: Sequence[Sample]) -> dict[str, list[int]]:
    """Sample indices by group, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    return groups


def positive(name: str, value: Any, allow_zero: bool = False) -> float:
    """``value`` as a float, or a ValueError naming the option."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (value < 0 if allow_zero else value <= 0)
    ):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return float(value)

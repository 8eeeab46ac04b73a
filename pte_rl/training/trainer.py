"""TRL's ``GRPOTrainer`` with two options: turn-level credit, and a floor under correct rollouts' advantages.

**Turn credit** (``credit="turn"``, :mod:`pte_rl.training.credit`): the efficiency part of a penalised
rollout's advantage is spread over its turns by their attributed cost, per token, before the floor.
Logged (:func:`pte_rl.training.credit.credit_metrics`): ``credit/turn<k>_multiplier`` and
``credit/turn<k>_penalty`` (k = 1, 2, 3, ``4+``: the mean multiplier and efficiency advantage of turn k
over the rollouts whose penalty was spread) and ``credit/spread_frac`` (the share of such rollouts).

**The floor.**

With a success-gated efficiency penalty, a group whose rollouts are all correct still spreads its
advantages around zero: the costly correct rollouts get negative advantages, and every token of them
is pushed down, the answer's copied digits included. On the embedded task that push generalises to the
copies of the cheap path (``819`` answered ``81``: docs/tiny.md). ``correct_advantage_floor=0.0``
raises every correct rollout's advantage to at least 0 after TRL has computed them, so an efficiency
penalty can only *reward* the cheaper correct rollouts: a correct rollout is never pushed down, an
incorrect one is pushed down as before. Correctness alone (binary rewards) never gives a correct
rollout a negative advantage, so the ``correctness`` preset trains exactly as without the floor.

    advantage_i <- max(advantage_i, floor)   where correctness_i >= 0.5 (NaN: unchanged)

The correctness column is the reward function named ``correctness`` (every preset in rewards/ has
one). The share of rollouts raised is logged as ``advantages/floored_frac``.

trl is imported by :func:`grpo_trainer_class` only (it takes ~45 s of CPU to import).
"""

from __future__ import annotations

from typing import Any

from pte_rl.rollout import trl_adapter
from pte_rl.training.credit import CREDIT_MODES, correctness_advantages, credit_metrics, per_token_advantages


def floor_correct_advantages(advantages: Any, correctness: Any, floor: float) -> tuple[Any, int]:
    """``advantages`` with ``max(a, floor)`` where ``correctness >= 0.5``; and how many were raised.

    >>> import torch
    >>> adv, raised = floor_correct_advantages(torch.tensor([-1.0, 0.5, -0.5, -2.0]),
    ...                                        torch.tensor([1.0, 1.0, 0.0, float("nan")]), 0.0)
    >>> adv.tolist(), raised
    ([0.0, 0.5, -0.5, -2.0], 1)
    """
    import torch

    if advantages.shape[0] != correctness.shape[0]:
        raise ValueError(
            f"advantages and correctness must have the same length, got {advantages.shape[0]}, "
            f"{correctness.shape[0]}"
        )
    correct = torch.nan_to_num(correctness.to(advantages.device), nan=0.0) >= 0.5
    if advantages.dim() > 1:  # per-token advantages (B, T)
        correct = correct.unsqueeze(1).expand_as(advantages)
    raise_mask = correct & (advantages < floor)
    raised = int(raise_mask.any(dim=1).sum()) if advantages.dim() > 1 else int(raise_mask.sum())
    return torch.where(raise_mask, torch.full_like(advantages, float(floor)), advantages), raised


def grpo_trainer_class(correct_advantage_floor: float | None = None, correctness_name: str = "correctness",
                       credit: str = "trajectory", cost_model: Any = None):
    """``trl.GRPOTrainer`` itself with neither option, else a subclass that applies them.

    The subclass reaches TRL's advantages through :func:`pte_rl.rollout.trl_adapter.advantage_hook`.
    ``credit="turn"`` needs the run's ``cost_model`` (the attribution prices turns with it).
    """
    from trl import GRPOTrainer

    if credit not in CREDIT_MODES:
        raise ValueError(f"credit: expected one of {CREDIT_MODES}, got {credit!r}")
    if credit == "turn" and cost_model is None:
        raise ValueError("credit='turn' needs the run's cost_model")
    if correct_advantage_floor is None and credit == "trajectory":
        return GRPOTrainer
    floor = None if correct_advantage_floor is None else float(correct_advantage_floor)

    hooked: Any = trl_adapter.advantage_hook(GRPOTrainer)

    class PteRlGRPOTrainer(hooked):
        """GRPOTrainer with turn credit and/or the correct-rollout floor (see pte_rl.training.trainer)."""

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            names = trl_adapter.reward_names(self)
            if correctness_name not in names:
                raise ValueError(
                    f"correct_advantage_floor and turn credit need a reward function named {correctness_name!r}; "
                    f"the preset has {names}"
                )
            self._correct_column = names.index(correctness_name)

        def adjust_advantages(self, advantages: Any, rewards_per_func: Any, batch: Any) -> Any:
            if credit == "turn":
                advantages = self._spread_by_turn(advantages, batch)
            if floor is not None:
                correctness = rewards_per_func[:, self._correct_column]
                advantages, raised = floor_correct_advantages(advantages, correctness, floor)
                trl_adapter.record_metric(self, "advantages/floored_frac", raised / max(advantages.shape[0], 1))
            return advantages

        def _spread_by_turn(self, advantages: Any, batch: Any) -> Any:
            if batch.multi_objective_aggregation != "sum_then_normalize":
                raise ValueError("credit='turn' splits TRL's sum_then_normalize advantages; "
                                 f"multi_objective_aggregation is {batch.multi_objective_aggregation!r}")
            correct = correctness_advantages(batch.all_rewards_per_func, batch.reward_weights, self._correct_column,
                                             batch.num_generations, batch.scale_rewards)[batch.rows]
            spread, multipliers = per_token_advantages(advantages, correct.to(advantages.device), batch.prompt_mask,
                                                       batch.policy_mask, cost_model)
            efficiency = (advantages - correct.to(advantages.device)).tolist()
            for name, value in credit_metrics(multipliers, efficiency).items():
                trl_adapter.record_metric(self, name, value)
            return spread

    return PteRlGRPOTrainer

"""TRL's ``GRPOTrainer`` with one option: a floor under the advantages of correct rollouts.

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


def grpo_trainer_class(correct_advantage_floor: float | None = None, correctness_name: str = "correctness"):
    """``trl.GRPOTrainer`` itself when the floor is None, else a subclass that applies it.

    The subclass reaches TRL's advantages through :func:`pte_rl.rollout.trl_adapter.advantage_hook`.
    """
    from trl import GRPOTrainer

    if correct_advantage_floor is None:
        return GRPOTrainer
    floor = float(correct_advantage_floor)

    hooked: Any = trl_adapter.advantage_hook(GRPOTrainer)

    class FlooredGRPOTrainer(hooked):
        """GRPOTrainer with the advantages of correct rollouts floored (see pte_rl.training.trainer)."""

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            names = trl_adapter.reward_names(self)
            if correctness_name not in names:
                raise ValueError(
                    f"correct_advantage_floor needs a reward function named {correctness_name!r}; the "
                    f"preset has {names}"
                )
            self._correct_column = names.index(correctness_name)

        def adjust_advantages(self, advantages: Any, rewards_per_func: Any) -> Any:
            correctness = rewards_per_func[:, self._correct_column]
            advantages, raised = floor_correct_advantages(advantages, correctness, floor)
            trl_adapter.record_metric(self, "advantages/floored_frac", raised / max(advantages.shape[0], 1))
            return advantages

    return FlooredGRPOTrainer

"""Turn-level credit: put a turn's share of the efficiency penalty on that turn's tokens.

GRPO gives every token of a rollout the same advantage, so the penalty for one wasteful turn (a
confirming call, a verbose tool report that every later turn re-prefills) also pushes down the good
decisions of the other turns. With ``credit: turn`` the advantage of a rollout is split in two:

    A = A_correct + A_efficiency
    A_correct    = w_c * (r_c - mean_group(r_c)) / s      (the correctness column, TRL's scaling s)
    A_efficiency = A - A_correct                          (every other reward function)

``A_correct`` stays on every token. Where ``A_efficiency`` is a penalty (< 0: the rollout cost more
than its group's mean), it is spread over the rollout's turns by their attributed cost
(:func:`pte_rl.pricing.attribution.attribute`): the tokens of turn j get ``A_efficiency * T * share_j``
(T turns, ``share_j`` turn j's share of the PTE, so the multipliers average 1 over the turns and a
rollout of equally costly turns trains exactly as with ``trajectory`` credit). A rollout cheaper than
its group (``A_efficiency >= 0``) keeps its bonus on every token: nothing in it is to blame.

The turns are read from the batch TRL trains on: a turn is a run of the policy's own tokens in the
completion (``completion_mask * tool_mask`` = 1; tool responses and template tokens are 0), its context
the prompt plus everything before the run (:func:`pte_rl.rollout.trl_adapter.turns_from_ids`, the same
count that gives the exact accounting of TRL's own tool loop). These are the ids TRL really trains on,
so the attribution uses the same counts as the loss. s is TRL's: ``std_group(R) + 1e-4`` (``scale_rewards: group``),
``std(R) + 1e-4`` (``batch``) or 1 (``none``), R the weighted sum of the reward columns (NaN as 0).
"""

from __future__ import annotations

from typing import Any

from pte_rl.pricing.attribution import attribute
from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.trajectory import Turn
from pte_rl.rollout.trl_adapter import turns_from_ids

CREDIT_MODES = ("trajectory", "turn")


def turn_multipliers(turns: list[Turn], cost_model: CostModel) -> list[float]:
    """``T * share_j`` for each turn (mean 1); all 1 when the rollout costs nothing.

    >>> turn_multipliers([Turn(100, 10), Turn(160, 10)], CostModel(gamma=0.0))   # PTE 100 + 160; turn 0 owns 100 + 60
    [1.2307692307692308, 0.7692307692307693]
    """
    totals = [share.total for share in attribute(turns, cost_model)]
    whole = sum(totals)
    if whole <= 0:
        return [1.0] * len(turns)
    return [len(turns) * total / whole for total in totals]


def correctness_advantages(rewards_per_func: Any, weights: Any, column: int, num_generations: int,
                           scale_rewards: str) -> Any:
    """``A_correct`` for every row of TRL's gathered ``(rows, reward functions)`` matrix (see above).

    Mirrors TRL 1.16's ``sum_then_normalize``: a row where every function returned None (NaN) is left
    out of the group's mean and std and gets 0.

    >>> import torch
    >>> rewards = torch.tensor([[1.0, -0.2], [1.0, -0.6], [0.0, 0.0], [1.0, -0.2]])
    >>> correctness_advantages(rewards, torch.tensor([1.0, 1.0]), 0, 4, "none").tolist()
    [0.25, 0.25, -0.75, 0.25]
    """
    import torch

    weights = weights.to(rewards_per_func.device)
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    total = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    correct = weights[column] * torch.nan_to_num(rewards_per_func[:, column], nan=0.0)
    total[unscorable] = correct[unscorable] = torch.nan
    mean = torch.nanmean(correct.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
    centred = correct - mean
    if scale_rewards == "group":
        std = _nanstd(total.view(-1, num_generations)).repeat_interleave(num_generations)
    elif scale_rewards == "batch":
        std = _nanstd(total.view(1, -1)).expand_as(total)
    elif scale_rewards != "none":
        raise ValueError(f"scale_rewards: turn credit supports 'group', 'batch' or 'none', got {scale_rewards!r}")
    scaled = centred if scale_rewards == "none" else centred / (std + 1e-4)
    return torch.nan_to_num(scaled, nan=0.0)


def _nanstd(rows: Any) -> Any:
    """Per-row standard deviation ignoring NaNs, with Bessel's correction (TRL's ``nanstd``); 0 for one value."""
    import torch

    mean = torch.nanmean(rows, dim=1, keepdim=True)
    count = (~torch.isnan(rows)).sum(dim=1)
    variance = torch.nanmean((rows - mean) ** 2, dim=1) * count / (count - 1).clamp(min=1)
    return torch.where(count > 1, variance.sqrt(), torch.zeros_like(variance))


def per_token_advantages(advantages: Any, correct: Any, prompt_mask: Any, policy_mask: Any,
                         cost_model: CostModel) -> tuple[Any, list[list[float]]]:
    """``(B, T)`` advantages with each penalised rollout's efficiency part spread over its turns.

    ``advantages`` and ``correct`` are this process's rows (B,), ``prompt_mask`` (B, P), ``policy_mask``
    (B, T) = completion_mask * tool_mask. Also returns each row's turn multipliers (for logging).

    >>> import torch
    >>> adv, mult = per_token_advantages(torch.tensor([-1.0]), torch.tensor([0.5]), torch.ones(1, 100),
    ...                                  torch.tensor([[1, 1, 0, 0, 1]]), CostModel(gamma=0.0))
    >>> [round(a, 3) for a in adv[0].tolist()]   # A_eff = -1.5; multipliers 2*104/204 and 2*100/204
    [-1.029, -1.029, -1.0, -1.0, -0.971]
    """
    efficiency = advantages - correct
    token_advantages = advantages.unsqueeze(1).repeat(1, policy_mask.shape[1])
    multipliers: list[list[float]] = []
    for row in range(advantages.shape[0]):
        prompt_length, mask = int(prompt_mask[row].sum()), [int(v) for v in policy_mask[row].tolist()]
        turns = [Turn(context, decode) for context, decode, _ in turns_from_ids(prompt_length, len(mask), mask)]
        if efficiency[row] >= 0 or len(turns) < 2:
            multipliers.append([1.0] * len(turns))
            continue
        factors = turn_multipliers(turns, cost_model)
        multipliers.append(factors)
        for turn, factor in zip(turns, factors, strict=True):
            start = turn.context_tokens - prompt_length  # the run's place in the completion
            token_advantages[row, start:start + turn.decode_tokens] = correct[row] + efficiency[row] * factor
    return token_advantages, multipliers


def credit_metrics(multipliers: list[list[float]], efficiency: list[float]) -> dict[str, float]:
    """Over the rollouts whose penalty was spread (multipliers not all 1), per turn k (1, 2, 3, ``4+``):
    ``credit/turn<k>_multiplier`` and ``credit/turn<k>_penalty`` (mean ``A_efficiency * multiplier``, the
    efficiency advantage its tokens got); and ``credit/spread_frac``, the share of rollouts spread.

    >>> m = credit_metrics([[1.2, 0.8], [1.0], [1.5, 0.5]], [-1.0, 0.3, -0.5])
    >>> m["credit/spread_frac"], m["credit/turn1_multiplier"], m["credit/turn1_penalty"]
    (0.6666666666666666, 1.35, -0.975)
    """
    spread = [(row, eff) for row, eff in zip(multipliers, efficiency, strict=True) if any(f != 1.0 for f in row)]
    metrics = {"credit/spread_frac": len(spread) / len(multipliers)} if multipliers else {}
    by_turn: dict[str, list[float]] = {}
    for row, eff in spread:
        for index, factor in enumerate(row):
            turn = index + 1 if index < 3 else "4+"
            by_turn.setdefault(f"credit/turn{turn}_multiplier", []).append(factor)
            by_turn.setdefault(f"credit/turn{turn}_penalty", []).append(eff * factor)
    metrics.update({key: sum(values) / len(values) for key, values in by_turn.items()})
    return metrics

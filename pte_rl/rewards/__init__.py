"""Rewards for GRPO in TRL's contract: correctness, the normalised PTE penalty, naive baselines, presets.

    from pte_rl.rewards import load_preset
    reward_funcs, reward_weights, resolved = load_preset("pte", {"pte.weight": 0.3}, cost_model=cost_model,
                                                         checker=env.check_answer)

Modules:
  normalize    normalized_cost(costs, correct, group_ids, method, **options) and the gate/combine algebra
  functions    correctness_reward, pte_reward, cost_penalty (the same penalty over tokens or calls)
  baselines    kimi_length_reward, dapo_overlong_reward, otc_tool_reward, linear_token/call_penalty
  presets      load_preset: rewards/<name>.yaml + command-line overrides, validated
  records      trajectories from the rollout's records, or rebuilt from plain completions
  distributed  the cross-process gather that lets group statistics see whole GRPO groups
"""

from pte_rl.rewards.baselines import (
    dapo_overlong_reward,
    kimi_length_reward,
    linear_call_penalty,
    linear_token_penalty,
    otc_tool_reward,
    otc_tool_score,
)
from pte_rl.rewards.functions import correctness_reward, cost_penalty, pte_reward
from pte_rl.rewards.normalize import (
    COMBINES,
    GATES,
    METHODS,
    BudgetReference,
    normalized_cost,
    penalty_term,
    solved_groups,
    utility,
)
from pte_rl.rewards.loader import FUNCTIONS, PresetError, available_presets, load_preset

__all__ = [
    "COMBINES",
    "FUNCTIONS",
    "GATES",
    "METHODS",
    "BudgetReference",
    "PresetError",
    "available_presets",
    "correctness_reward",
    "cost_penalty",
    "dapo_overlong_reward",
    "kimi_length_reward",
    "linear_call_penalty",
    "linear_token_penalty",
    "load_preset",
    "normalized_cost",
    "otc_tool_reward",
    "otc_tool_score",
    "penalty_term",
    "pte_reward",
    "solved_groups",
    "utility",
]

"""Rewards for GRPO in TRL's contract: correctness, the normalised PTE penalty, naive baselines, presets.

    from pte_rl.rewards import load_preset
    reward_funcs, reward_weights, resolved = load_preset("pte", {"pte.weight": 0.3}, cost_model=cost_model,
                                                         checker=env.check_answer)

Modules:
  normalize    normalized_cost(costs, correct, group_ids, method, **options) and the gate/combine algebra
  functions    CorrectnessReward, CostPenalty (a penalty over any cost), PTEPenalty
  baselines    KimiLengthReward, DAPOOverlongReward, LinearTokenPenalty, LinearCallPenalty
  otc          OTCToolReward (OTC-GRPO's tool-call reward)
  base         the options, TRL call and logging every built-in reward shares
  samples      one TRL call -> the whole batch's samples (group, task, cost, correctness)
  records      trajectories rebuilt from plain completions; cost measures
  distributed  gather_batch: the one cross-process gather per batch (rewards and metrics share it)
  registry     REGISTRY (short name -> class) and dotted paths to rewards of the user's own
  loader       load_preset: presets/<name>.yaml + overrides (overrides), built and checked (build)
"""

from pte_rl.rewards.baselines import DAPOOverlongReward, KimiLengthReward, LinearCallPenalty, LinearTokenPenalty
from pte_rl.rewards.errors import PresetError
from pte_rl.rewards.functions import CorrectnessReward, CostPenalty, PTEPenalty
from pte_rl.rewards.loader import available_presets, load_preset
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
from pte_rl.rewards.otc import OTCToolReward, otc_tool_score
from pte_rl.rewards.registry import REGISTRY

__all__ = [
    "COMBINES",
    "GATES",
    "METHODS",
    "REGISTRY",
    "BudgetReference",
    "CorrectnessReward",
    "CostPenalty",
    "DAPOOverlongReward",
    "KimiLengthReward",
    "LinearCallPenalty",
    "LinearTokenPenalty",
    "OTCToolReward",
    "PTEPenalty",
    "PresetError",
    "available_presets",
    "load_preset",
    "normalized_cost",
    "otc_tool_score",
    "penalty_term",
    "solved_groups",
    "utility",
]

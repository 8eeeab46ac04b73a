"""Turn-level credit (pte_rl.training.credit): the advantage split and the per-token spread."""

from __future__ import annotations

import pytest
import torch

from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.trajectory import Turn
from pte_rl.training.credit import correctness_advantages, per_token_advantages, turn_multipliers


def trl_advantages(rewards_per_func, weights, num_generations, scale_rewards):
    """TRL 1.16's sum_then_normalize advantages, written out with TRL's own nanstd (an independent path)."""
    from trl.trainer.utils import nanstd

    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    rewards[unscorable] = torch.nan
    mean = torch.nanmean(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
    if scale_rewards == "batch":
        std = nanstd(rewards).expand_as(rewards)
    else:
        std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
    advantages = rewards - mean
    if scale_rewards != "none":
        advantages = advantages / (std + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_the_correctness_part_is_trl_advantage_of_the_correctness_column_at_trl_scale(scale_rewards):
    from trl.trainer.utils import nanstd

    generator = torch.Generator().manual_seed(0)
    correct = (torch.rand(12, generator=generator) > 0.4).float()
    penalty = -torch.rand(12, generator=generator) * correct
    rewards = torch.stack([correct, penalty], dim=1)
    rewards[5] = torch.nan  # unscorable: every function returned None
    rewards[7, 1] = torch.nan  # the penalty did not apply
    weights = torch.tensor([1.0, 0.5])
    a_correct = correctness_advantages(rewards, weights, 0, 4, scale_rewards)
    total = trl_advantages(rewards, weights, 4, scale_rewards)
    # independently: the correctness column centred on its group's scorable rows, over TRL's scale of R
    weighted = rewards.clone()
    weighted[:, 1] *= 0.5
    r = weighted.nansum(dim=1)
    r[5] = torch.nan
    if scale_rewards == "none":
        scale = torch.ones(12)
    elif scale_rewards == "batch":
        scale = nanstd(r).expand(12) + 1e-4
    else:
        scale = nanstd(r.view(3, 4), dim=1).repeat_interleave(4) + 1e-4
    c = correct.clone()
    c[5] = torch.nan
    expected = torch.nan_to_num((c - torch.nanmean(c.view(3, 4), dim=1).repeat_interleave(4)) / scale, nan=0.0)
    assert torch.allclose(a_correct, expected, atol=1e-6)
    assert a_correct[5] == 0 and total[5] == 0
    # what is left for the efficiency part is the penalty column centred the same way
    p = weighted[:, 1].clone()
    p[7] = 0.0
    p[5] = torch.nan
    rest = torch.nan_to_num((p - torch.nanmean(p.view(3, 4), dim=1).repeat_interleave(4)) / scale, nan=0.0)
    assert torch.allclose(total - a_correct, rest, atol=1e-5)


def test_equally_costly_turns_keep_the_trajectory_advantage():
    # gamma 0, no prompt: turns (context 0, decode 4) and (context 4, decode 4); PTE = 0 + 4, all of it
    # turn 1 re-reading turn 0's tokens: turn 0's share 4, turn 1's 0.
    assert turn_multipliers([Turn(0, 4), Turn(4, 4)], CostModel(gamma=0.0)) == [2.0, 0.0]
    # a long prompt makes the two turns nearly equal: 1000 + 1004 of 2004 -> 2*1004/2004, 2*1000/2004
    factors = turn_multipliers([Turn(1000, 4), Turn(1004, 4)], CostModel(gamma=0.0))
    assert factors == pytest.approx([2 * 1004 / 2004, 2 * 1000 / 2004]) and sum(factors) == pytest.approx(2.0)


def test_a_penalised_rollout_puts_the_penalty_on_the_turn_whose_tool_output_later_turns_reread():
    # prompt 50; turn 0 decodes 5 then a 300-token tool response; turn 1 decodes 5 and answers.
    mask = torch.tensor([[1] * 5 + [0] * 300 + [1] * 5, [1] * 5 + [0] * 305])
    advantages, correct = torch.tensor([-0.5, 1.0]), torch.tensor([0.5, 0.5])
    tokens, multipliers = per_token_advantages(advantages, correct, torch.ones(2, 50), mask,
                                               CostModel(gamma=0.005))
    # turn 0: own 50 + 0.005*50*5 = 51.25; later at turn 1 (decode 5): 305 + 0.005*305*5 = 312.625
    # turn 1: own 50 + 0.005*50*5 = 51.25 -> shares 363.875 and 51.25 of 415.125
    share0 = 363.875 / 415.125
    assert multipliers[0] == pytest.approx([2 * share0, 2 * (1 - share0)])
    assert tokens[0, 0].item() == pytest.approx(0.5 + (-1.0) * 2 * share0)
    assert tokens[0, -1].item() == pytest.approx(0.5 + (-1.0) * 2 * (1 - share0))
    assert tokens[0, 100].item() == pytest.approx(-0.5)  # a tool token: masked out of the loss, left as is
    # the mean over the two turns' multipliers is 1: the rollout's total push is unchanged per turn
    assert sum(multipliers[0]) / 2 == pytest.approx(1.0)
    # a rollout with a bonus (A_eff = 0.5 >= 0) keeps it on every token
    assert torch.all(tokens[1] == 1.0) and multipliers[1] == [1.0]


def test_a_group_split_over_two_processes_is_split_as_a_whole(monkeypatch):
    """12 rows in GRPO groups of 4 (rows 0-3, 4-7, 8-11), 6 rows per process: the group of rows 4-7
    straddles both processes. Each process's per-token advantages equal the single-process ones on its
    rows: the correctness part is taken from the gathered matrix, never from the local rows alone."""
    from collections import defaultdict
    from types import SimpleNamespace

    import trl

    from pte_rl.rollout.trl_adapter import AdvantageBatch
    from pte_rl.training.trainer import grpo_trainer_class

    generator = torch.Generator().manual_seed(3)
    correct = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    rewards = torch.stack([correct, -torch.rand(12, generator=generator) * correct], dim=1)
    weights = torch.tensor([1.0, 1.0])
    advantages = trl_advantages(rewards, weights, 4, "group")
    prompt_mask = torch.ones(12, 20)
    policy_mask = torch.tensor([[1] * 3 + [0] * 40 + [1] * 3] * 12)  # two turns, a 40-token tool response
    model = CostModel(gamma=0.01)

    monkeypatch.setattr(trl, "GRPOTrainer", type("GRPOTrainer", (), {}))  # the class body only, no model
    spread = grpo_trainer_class(None, credit="turn", cost_model=model)._spread_by_turn

    def on_process(rows: slice):
        fake = SimpleNamespace(_correct_column=0, model=SimpleNamespace(training=True),
                               _metrics={"train": defaultdict(list)})
        batch = AdvantageBatch(rewards, rows, prompt_mask[rows], policy_mask[rows], weights, 4, "group",
                               "sum_then_normalize")
        return spread(fake, advantages[rows], batch)

    whole = on_process(slice(0, 12))
    halves = torch.cat([on_process(slice(0, 6)), on_process(slice(6, 12))])
    assert torch.allclose(halves, whole)
    assert not torch.allclose(whole, advantages.unsqueeze(1).expand_as(whole))  # some penalty was spread

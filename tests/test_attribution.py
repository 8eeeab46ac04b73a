"""Per-turn cost attribution (pte_rl.pricing.attribution): worked examples and the sum rule."""

from __future__ import annotations

import itertools
import random

import pytest

from pte_rl.pricing.attribution import _segments, attribute
from pte_rl.pricing.cost import ATTENTION_MODES, CACHE_POLICIES, CostModel, pte
from pte_rl.pricing.trajectory import Turn


def test_three_turns_by_hand_under_evict():
    # prompt 100; turn 0 adds 10 decoded + 40 tool tokens; turn 1 adds 5 + 300 (a verbose tool); turn 2 answers.
    turns = [Turn(100, 10, tool_tokens=40), Turn(150, 5, tool_tokens=300), Turn(455, 8)]
    shares = attribute(turns, CostModel(gamma=0.01))
    # turn 0 own: 100 + 0.01*100*10 = 110; later: at turn 1, 50 + 0.01*50*5 = 52.5; at turn 2, 50 + 0.01*50*8 = 54
    assert shares[0].own == pytest.approx(110.0) and shares[0].later == pytest.approx(106.5)
    # turn 1 own: 100 + 0.01*100*5 = 105; later: at turn 2, 305 + 0.01*305*8 = 329.4
    assert shares[1].own == pytest.approx(105.0) and shares[1].later == pytest.approx(329.4)
    # turn 2 own: 100 + 0.01*100*8 = 108
    assert shares[2].own == pytest.approx(108.0) and shares[2].later == 0.0
    assert sum(s.total for s in shares) == pytest.approx(pte(turns, 0.01).total)


def test_reuse_charges_only_the_appended_tokens_to_their_owner():
    turns = [Turn(100, 10), Turn(150, 5), Turn(455, 8)]
    shares = attribute(turns, CostModel(gamma=0.0, cache="reuse"))
    # reuse prefills 100, then 150-110 = 40 (turn 0's tool tokens), then 455-155 = 300 (turn 1's)
    assert [s.own for s in shares] == [100.0, 0.0, 0.0]
    assert [s.later for s in shares] == [40.0, 300.0, 0.0]


def test_exact_attention_and_delta_stay_with_the_decoding_turn():
    turns = [Turn(10, 4), Turn(20, 3)]
    shares = attribute(turns, CostModel(gamma=0.5, attention="exact", delta=2.0))
    # turn 1: own = prompt 10 * (1 + 0.5*3) + exact 0.5*3*2/2 + delta 2*3 = 25 + 1.5 + 6
    assert shares[1].own == pytest.approx(32.5)
    # turn 0: own = 10*(1 + 0.5*4) + 0.5*4*3/2 + 2*4 = 30 + 3 + 8; later = 10*(1 + 0.5*3) = 25
    assert (shares[0].own, shares[0].later) == (pytest.approx(41.0), pytest.approx(25.0))


def test_segments_partition_the_context_even_when_it_shrinks():
    # a template that drops earlier text (Qwen3's <think>): turn 2's context is shorter than turn 1's
    contexts = [100, 180, 150, 260]
    for turn in range(len(contexts)):
        covered = sorted((start, end) for _, start, end in _segments(contexts, turn) if end > start)
        assert covered[0][0] == 0 and covered[-1][1] == contexts[turn]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))
    assert _segments(contexts, 3) == [(2, 150, 260), (0, 100, 150), (-1, 0, 100)]


@pytest.mark.parametrize(("cache", "attention"), list(itertools.product(CACHE_POLICIES, ATTENTION_MODES)))
def test_shares_sum_to_the_pte_for_every_cache_policy_and_attention_mode(cache, attention):
    rng = random.Random(f"{cache}-{attention}")
    model = CostModel(gamma=rng.uniform(0, 0.02), cache=cache, attention=attention, delta=rng.uniform(0, 3))
    for _ in range(200):
        context, turns = rng.randint(0, 300), []
        for _ in range(rng.randint(1, 7)):
            decode = rng.randint(0, 60)
            cached = rng.choice([None, rng.randint(0, context + 20)])
            turns.append(Turn(context, decode, cached_tokens=cached))
            context = max(0, context + decode + rng.randint(-80, 400))  # sometimes shrinks
        shares = attribute(turns, model)
        assert sum(s.total for s in shares) == pytest.approx(pte(turns, model).total, rel=1e-12, abs=1e-9)
        assert all(s.own >= 0 and s.later >= 0 for s in shares)
        assert shares[-1].later == 0.0

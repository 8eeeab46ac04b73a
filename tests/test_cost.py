"""PTE accounting: hand-worked examples for every cache policy and attention mode, batch == single."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pte_rl.errors import InputError
from pte_rl.pricing.cost import (
    ATTENTION_MODES,
    CACHE_POLICIES,
    CostModel,
    TurnTable,
    pte,
    pte_batch,
    token_totals,
    turn_costs,
)
from pte_rl.pricing.trajectory import Trajectory, Turn

# Three turns; between them tool responses of 30 and 40 tokens are appended.
#   turn 0: context 100, decode 20, engine reported 0 cached
#   turn 1: context 150 = 100 + 20 + 30, decode 10, 100 cached
#   turn 2: context 200 = 150 + 10 + 40, decode 5, 300 "cached" (more than the context: capped)
TURNS = [Turn(100, 20, cached_tokens=0), Turn(150, 10, cached_tokens=100), Turn(200, 5, cached_tokens=300)]
GAMMA = 0.01

# prefill per turn, worked by hand
PREFILL = {
    "evict": [100, 150, 200],  # the whole context every turn
    "reuse": [100, 150 - 120, 200 - 160],  # only what was appended since the last turn ended
    "measured": [100 - 0, 150 - 100, 200 - 200],  # context minus min(cached, context)
}
# sum of context_i * decode_i = 2000 + 1500 + 1000; exact adds D(D-1)/2 = 190 + 45 + 10
ATTENDED = {"paper": [2000, 1500, 1000], "exact": [2190, 1545, 1010]}


@pytest.mark.parametrize("cache", CACHE_POLICIES)
@pytest.mark.parametrize("attention", ATTENTION_MODES)
@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_hand_worked_every_policy_and_mode(cache: str, attention: str, delta: float) -> None:
    result = pte(TURNS, GAMMA, cache=cache, attention=attention, delta=delta)
    decodes = [20, 10, 5]
    expected_decode = [GAMMA * a + delta * d for a, d in zip(ATTENDED[attention], decodes, strict=True)]
    assert [t.prefill for t in result.turns] == pytest.approx(PREFILL[cache])
    assert [t.decode for t in result.turns] == pytest.approx(expected_decode)
    assert result.prefill == pytest.approx(sum(PREFILL[cache]))
    assert result.decode == pytest.approx(GAMMA * sum(ATTENDED[attention]) + delta * 35)
    assert result.total == pytest.approx(result.prefill + result.decode)


def test_hand_worked_totals() -> None:
    # evict + paper: 450 + 0.01 * 4500 = 495
    assert pte(TURNS, GAMMA).total == pytest.approx(495.0)
    # reuse + exact + delta 0.5: 170 + 0.01 * 4745 + 0.5 * 35 = 234.95
    assert pte(TURNS, GAMMA, cache="reuse", attention="exact", delta=0.5).total == pytest.approx(234.95)
    # measured + paper: 150 + 45 = 195
    assert pte(TURNS, GAMMA, cache="measured").total == pytest.approx(195.0)


def test_measured_without_cached_counts_prefills_everything() -> None:
    turns = [Turn(100, 20), Turn(150, 10, cached_tokens=None)]
    assert pte(turns, GAMMA, cache="measured").prefill == 250.0


def test_reuse_charges_nothing_when_context_does_not_grow() -> None:
    # The second turn's context is exactly what the first ended with: a perfect cache holds it all.
    turns = [Turn(100, 20), Turn(120, 10)]
    assert [c.prefill for c in turn_costs(turns, GAMMA, cache="reuse")] == [100.0, 0.0]


def test_cost_model_and_trajectory_inputs_agree() -> None:
    model = CostModel(gamma=GAMMA, cache="reuse", attention="exact", delta=0.5)
    assert pte(Trajectory(turns=TURNS), model).total == pytest.approx(234.95)
    assert pte_batch([Trajectory(turns=TURNS)], model).total[0] == pytest.approx(234.95)


def test_prefill_share_and_token_totals() -> None:
    result = pte(TURNS, GAMMA)
    assert result.prefill_share == pytest.approx(450 / 495)
    assert token_totals(TURNS) == {"generated_tokens": 35, "input_tokens": 450, "total_tokens": 485}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"gamma": -0.1}, "gamma"),
        ({"gamma": float("nan")}, "gamma"),
        ({"gamma": 0.1, "delta": -1.0}, "delta"),
        ({"gamma": 0.1, "cache": "lru"}, "cache"),
        ({"gamma": 0.1, "attention": "flash"}, "attention"),
    ],
)
def test_cost_model_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        CostModel(**kwargs)


def test_negative_token_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="decode_tokens"):
        Turn(10, -1)
    with pytest.raises(InputError, match="non-negative"):
        TurnTable.from_arrays([0], [-5], [3])


def test_table_rows_must_be_contiguous() -> None:
    with pytest.raises(ValueError, match="contiguous"):
        TurnTable.from_arrays([0, 1, 0], [1, 2, 3], [1, 1, 1])


def test_batch_per_turn_parts_match_turn_costs() -> None:
    other = [Turn(10, 3), Turn(40, 7, cached_tokens=13)]
    batch = pte_batch([TURNS, [], other], GAMMA, cache="measured", attention="exact", delta=0.25)
    singles = turn_costs(TURNS, GAMMA, cache="measured", attention="exact", delta=0.25) + turn_costs(
        other, GAMMA, cache="measured", attention="exact", delta=0.25
    )
    assert batch.turn_prefill.tolist() == pytest.approx([c.prefill for c in singles])
    assert batch.turn_decode.tolist() == pytest.approx([c.decode for c in singles])
    assert batch.total[1] == 0.0  # a trajectory without turns costs nothing


def _random_trajectories(rng: np.random.Generator, count: int) -> list[list[Turn]]:
    out = []
    for _ in range(count):
        context, turns = int(rng.integers(0, 500)), []
        for _ in range(int(rng.integers(0, 6))):
            decode = int(rng.integers(0, 300))
            cached = None if rng.random() < 0.3 else int(rng.integers(0, context + 50))
            turns.append(Turn(context, decode, cached_tokens=cached))
            # usually grows by decode + tool tokens; sometimes the context is cut (shrinks)
            context = max(0, context + decode + int(rng.integers(-200, 400)))
        out.append(turns)
    return out


@pytest.mark.parametrize("cache", CACHE_POLICIES)
@pytest.mark.parametrize("attention", ATTENTION_MODES)
def test_batch_equals_single_on_random_trajectories(cache: str, attention: str) -> None:
    trajectories = _random_trajectories(np.random.default_rng(7), 300)
    batch = pte_batch(trajectories, 0.0037, cache=cache, attention=attention, delta=1.5)
    single = [pte(t, 0.0037, cache=cache, attention=attention, delta=1.5) for t in trajectories]
    np.testing.assert_allclose(batch.total, [s.total for s in single], rtol=1e-12)
    np.testing.assert_allclose(batch.prefill, [s.prefill for s in single], rtol=1e-12)
    np.testing.assert_allclose(batch.decode, [s.decode for s in single], rtol=1e-12)


_turn = st.builds(
    Turn,
    context_tokens=st.integers(0, 100_000),
    decode_tokens=st.integers(0, 20_000),
    cached_tokens=st.one_of(st.none(), st.integers(0, 120_000)),
)


@settings(max_examples=50, deadline=None)
@given(
    trajectories=st.lists(st.lists(_turn, max_size=6), max_size=8),
    gamma=st.floats(0, 0.05, allow_nan=False),
    delta=st.floats(0, 50, allow_nan=False),
    cache=st.sampled_from(CACHE_POLICIES),
    attention=st.sampled_from(ATTENTION_MODES),
)
def test_property_batch_equals_single(trajectories, gamma, delta, cache, attention) -> None:
    batch = pte_batch(trajectories, gamma, cache=cache, attention=attention, delta=delta)
    assert batch.total.shape == (len(trajectories),)
    for i, turns in enumerate(trajectories):
        single = pte(turns, gamma, cache=cache, attention=attention, delta=delta)
        assert batch.total[i] == pytest.approx(single.total, rel=1e-12, abs=1e-9)
        assert batch.prefill[i] == pytest.approx(single.prefill, rel=1e-12, abs=1e-9)
        # prefill never exceeds the evict policy's, which prefills everything
        assert single.prefill <= sum(t.context_tokens for t in turns)

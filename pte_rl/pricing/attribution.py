"""Per-turn cost attribution: what each assistant turn costs, counting what it makes later turns pay.

A trajectory's PTE (:mod:`pte_rl.pricing.cost`) is a sum over turns, but a turn's price is not all its
own doing: turn i re-prefills and attends to every token in its context, and most of those tokens were
put there by earlier turns (their decoded text and the tool responses they triggered). This module splits
the PTE into one share per turn, by who put each token there:

* the context of turn i is cut into segments by owner. A position ``p < context_i`` belongs to the
  latest earlier turn ``j < i`` with ``context_j <= p`` (the tokens turn j decoded and its tool response,
  ``[context_j, context_{j+1})`` when contexts grow), else to the prompt;
* at turn i, each position costs ``gamma * decode_i`` (it is attended to by every decoded token) plus 1
  if it is prefilled there (the last ``prefill_i`` positions: all of them under ``evict``, the tokens
  appended since the last turn under ``reuse``, the uncached suffix under ``measured``);
* a position's cost goes to its owner; the prompt's positions go to the turn that reads them (every
  turn pays for the prompt it could not avoid); the costs that belong to decoding itself (the ``exact``
  mode's within-turn attention and ``delta * decode_i``) go to turn i.

So ``own_j`` is what turn j pays at its own step for the prompt and for its own decoding, and
``later_j`` what its tokens cost every later turn (re-prefilled and attended to). The shares sum to the
trajectory's PTE for every cache policy and attention mode (tests/test_attribution.py checks it), and a
turn whose verbose tool output every later turn re-reads carries that cost, where a per-trajectory
penalty would spread it over the cheap turns too.

    >>> from pte_rl.pricing.cost import pte
    >>> from pte_rl.pricing.trajectory import Turn
    >>> turns = [Turn(context_tokens=100, decode_tokens=10), Turn(context_tokens=150, decode_tokens=20)]
    >>> shares = attribute(turns, CostModel(gamma=0.01))
    >>> [(s.own, s.later) for s in shares]   # turn 0: 100 + 0.01*100*10; its 50 tokens at turn 1: 50 + 0.01*50*20
    [(110.0, 60.0), (120.0, 0.0)]
    >>> sum(s.total for s in shares) == pte(turns, CostModel(gamma=0.01)).total
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pte_rl.pricing.cost import CostModel, turn_costs
from pte_rl.pricing.trajectory import Trajectory, Turn


@dataclass(frozen=True, slots=True)
class TurnShare:
    """One turn's share of a trajectory's PTE: paid at its own step, and caused at later steps."""

    own: float
    later: float

    @property
    def total(self) -> float:
        return self.own + self.later


def _segments(contexts: Sequence[int], turn: int) -> list[tuple[int, int, int]]:
    """(owner, start, end) covering ``[0, contexts[turn])``; owner -1 is the prompt.

    Position p belongs to the largest j < turn with ``contexts[j] <= p`` (else the prompt): going down
    from j = turn - 1, turn j owns ``[contexts[j], min(contexts[j+1..turn]))``.
    """
    segments = []
    upper = contexts[turn]
    for owner in range(turn - 1, -1, -1):
        start = contexts[owner]
        if start < upper:
            segments.append((owner, start, upper))
        upper = min(upper, start)
    segments.append((-1, 0, upper))
    return segments


def attribute(trajectory: Trajectory | Sequence[Turn], cost_model: CostModel) -> list[TurnShare]:
    """Each turn's share of the trajectory's PTE under ``cost_model`` (see the module docstring)."""
    turns = trajectory.turns if isinstance(trajectory, Trajectory) else list(trajectory)
    contexts = [t.context_tokens for t in turns]
    own = [0.0] * len(turns)
    later = [0.0] * len(turns)
    for index, (turn, cost) in enumerate(zip(turns, turn_costs(turns, cost_model), strict=True)):
        context, decode = turn.context_tokens, turn.decode_tokens
        first_prefilled = context - int(cost.prefill)
        # What decoding itself costs beyond gamma * context * decode: exact attention, delta.
        own[index] += cost.decode - cost_model.gamma * context * decode
        for owner, start, end in _segments(contexts, index):
            prefilled = max(0, end - max(start, first_prefilled))
            share = prefilled + cost_model.gamma * decode * (end - start)
            if owner < 0:
                own[index] += share
            else:
                later[owner] += share
    return [TurnShare(own=o, later=lt) for o, lt in zip(own, later, strict=True)]

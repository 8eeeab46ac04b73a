"""OTC-GRPO's tool-call reward, in TRL's contract: an ablation arm of the PTE penalty.

OTC-GRPO tool reward (Wang et al., "OTC: Optimal Tool Calls via Reinforcement Learning", arXiv
2504.14870, Sec. 3): with ``m`` the calls of a rollout and ``n`` the fewest calls among its group's
correct rollouts,

    f(m, n) = 0 if m = n = 0;  m if n = 0;  2nm / (m + n) otherwise
    r_tool  = 1                         if f(m, n) = n = 0
              cos(m * pi / (2m + c))    if n = 0            (c: the smoothing constant ``smooth``)
              sin(f(m, n) * pi / (2n))  otherwise

so r_tool = 1 at m = n and decays towards 0 as m grows. The paper's reward is ``alpha * r_tool *
r_correct`` (``form="paper"``); the default ``form="penalty"`` returns ``-c_i * (1 - r_tool_i)`` in
[-1, 0], which with the correctness reward at weight 1 and this one at weight ``w`` sums to
``c_i * (1 - w + w * r_tool_i)``: the paper's form at ``w = 1``, and with ``w < 1`` the same success
gating and ordering guarantee as the PTE penalty. With ``gate="solved"`` a group that holds an
incorrect rollout gets ``r_tool = 1`` (correctness alone), as the PTE penalty's gate of that name.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pte_rl.rewards.base import Bounds, GroupReward, Metrics, groups_of, positive
from pte_rl.rewards.normalize import solved_groups
from pte_rl.rewards.samples import Sample, mean

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pte_rl.rewards.base import CommonOptions


def otc_tool_score(calls: float, optimal: float, smooth: float) -> float:
    """OTC-GRPO's r_tool for ``calls`` = m and ``optimal`` = n (module docstring).

    >>> otc_tool_score(2, 2, 1.0), round(otc_tool_score(6, 2, 1.0), 6), round(otc_tool_score(1, 0, 1.0), 6)
    (1.0, 0.707107, 0.5)
    """
    m, n = float(calls), float(optimal)
    if m == 0 and n == 0:
        return 1.0
    if n == 0:
        return math.cos(m * math.pi / (2 * m + smooth))
    f = 2 * n * m / (m + n)
    return math.sin(f * math.pi / (2 * n))


class OTCToolReward(GroupReward):
    """OTC-GRPO's tool-call reward, relative to the fewest calls among the group's correct rollouts.

    ``gate="solved"`` scores tool calls only in groups whose every rollout is correct (``r_tool = 1``
    elsewhere), as the PTE penalty's gate of that name.

    >>> from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
    >>> shapes = [(2, True), (6, True), (0, False)]
    >>> records = [Trajectory([Turn(10, 5, tool_calls=[ToolCall("python")] * m)], task_id="t", correct=ok).to_dict()
    ...            for m, ok in shapes]
    >>> [round(r, 6) for r in OTCToolReward()(completions=[[], [], []], trajectory=records)]   # n = 2
    [0.0, -0.292893, 0.0]
    """

    measure = "tool_calls"

    def __init__(
        self,
        *,
        smooth: float = 1.0,
        form: str = "penalty",
        alpha: float = 1.0,
        gate: str = "correct",
        name: str = "otc_tool",
        **common: Unpack[CommonOptions],
    ) -> None:
        if form not in ("penalty", "paper"):
            raise ValueError(f"form: expected 'penalty' or 'paper', got {form!r}")
        if gate not in ("correct", "solved"):
            raise ValueError(f"gate: expected 'correct' or 'solved', got {gate!r}")
        self.gate = gate
        self.smooth = positive("smooth", smooth)
        self.alpha = positive("alpha", alpha)
        self.form = form
        super().__init__(name=name, **common)

    def score(self, samples: list[Sample]) -> tuple[list[float | None], Metrics]:
        rewards: list[float | None] = [None] * len(samples)
        tool_scores: list[float] = []
        solved = solved_groups([s.correct for s in samples], [s.group for s in samples])
        for group, indices in groups_of(samples).items():
            winners = [samples[i].cost for i in indices if _success(samples[i]) and math.isfinite(samples[i].cost)]
            optimal = min(winners) if winners else None
            for i in indices:
                s = samples[i]
                if s.correct is None:
                    continue
                if s.correct < 0.5:
                    rewards[i] = 0.0
                    continue
                if not math.isfinite(s.cost) or optimal is None:
                    continue
                r_tool = otc_tool_score(s.cost, optimal, self.smooth)
                tool_scores.append(r_tool)
                if self.gate == "solved" and group not in solved:
                    r_tool = 1.0  # a group with a failure is trained on correctness alone
                rewards[i] = (
                    self.alpha * r_tool * s.correct
                    if self.form == "paper"
                    else 0.0 - (1.0 - r_tool) * s.correct
                )
        metrics: dict[str, float | None] = {}
        metrics[f"reward/{self.__name__}_score_mean"] = mean(tool_scores)
        metrics[f"reward/{self.__name__}_mean"] = mean([r for r in rewards if r is not None])
        return rewards, metrics

    def bounds(self) -> Bounds:
        # paper form: r_tool in (0, 1], its infimum 0 is never reached but cannot be certified either
        return ((0.0, self.alpha), (0.0, 0.0)) if self.form == "paper" else ((-1.0, 0.0), (0.0, 0.0))

    def config(self) -> dict[str, Any]:
        return {
            "smooth": self.smooth,
            "form": self.form,
            "alpha": self.alpha,
            "gate": self.gate,
            **super().config(),
        }


def _success(sample: Sample) -> bool:
    return sample.correct is not None and sample.correct >= 0.5

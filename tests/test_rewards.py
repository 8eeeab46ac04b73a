"""Reward functions in TRL's contract: correctness, PTE penalty, token rebuild, bad input, pickling."""

from __future__ import annotations

import logging
import math
import pickle
from collections import defaultdict

import pytest
from conftest import count_tokens

from pte_rl.pricing.cost import CostModel, pte
from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
from pte_rl.rewards import (
    CorrectnessReward,
    CostPenalty,
    DAPOOverlongReward,
    KimiLengthReward,
    LinearCallPenalty,
    LinearTokenPenalty,
    OTCToolReward,
    PTEPenalty,
)
from pte_rl.rewards.records import trajectories


def exact_match(text: str, truth) -> bool:
    return text.strip() == str(truth)


class Log:
    """Stands in for TRL's log_metric / log_extra."""

    def __init__(self):
        self.metrics: dict[str, list[float]] = defaultdict(list)
        self.extra: dict[str, list] = {}

    def metric(self, name, value):
        self.metrics[name].append(value)

    def column(self, name, values):
        self.extra[name] = values


def say(text):
    return [{"role": "assistant", "content": text}]


# Four rollouts of one task, gamma = 0.01, PTE by hand (evict / paper):
#   0: [Turn(100, 20)]                      100 + 0.01*100*20               = 120    correct
#   1: [Turn(100, 20, 1 call), Turn(150, 10)]  120 + 150 + 0.01*150*10       = 285    correct
#   2: [Turn(100, 5)]                       100 + 5                         = 105    incorrect
#   3: [Turn(100, 10), Turn(300, 10)]       110 + 330                       = 440    correct
RECORDS = [
    Trajectory([Turn(100, 20)], task_id="t", correct=True),
    Trajectory(
        [Turn(100, 20, tool_calls=[ToolCall("python")], tool_tokens=30), Turn(150, 10)],
        task_id="t",
        correct=True,
    ),
    Trajectory([Turn(100, 5)], task_id="t", correct=False),
    Trajectory(
        [Turn(100, 10, tool_calls=[ToolCall("python")], tool_tokens=190), Turn(300, 10)],
        task_id="t",
        correct=True,
    ),
]
PTE_BY_HAND = [120.0, 285.0, 105.0, 440.0]


def call(reward, records=RECORDS, log=None, **kwargs):
    log = log or Log()
    return reward(
        prompts=[[{"role": "user", "content": "q"}]] * len(records),
        completions=[say("x")] * len(records),
        completion_ids=[[1, 2]] * len(records),
        trajectory=[r.to_dict() for r in records],
        log_metric=log.metric,
        log_extra=log.column,
        trainer_state=None,
        **kwargs,
    )


# ---------------------------------------------------------------- correctness


def test_correctness_reads_records_then_checker():
    log = Log()
    assert call(CorrectnessReward(), log=log) == [
        1.0,
        1.0,
        0.0,
        1.0,
    ]  # records' `correct`, no checker needed
    reward = CorrectnessReward(checker=exact_match)
    completions = [say("42"), say(" 42\n"), say("41"), say("")]
    got = reward(
        prompts=None,
        completions=completions,
        completion_ids=None,
        ground_truth=["42"] * 4,
        log_metric=log.metric,
    )
    assert got == [1.0, 1.0, 0.0, 0.0]
    assert log.metrics["reward/correctness_empty"] == [0.0, 1.0]  # one value per call
    assert log.metrics["reward/correctness_unscored"] == [0.0, 0.0]


def test_correctness_bad_input_is_unscored_not_zero(caplog):
    def flaky(text, truth):
        if text == "boom":
            raise RuntimeError("parser crashed")
        return None if truth == "?" else text == truth

    reward = CorrectnessReward(checker=flaky)
    log = Log()
    unfinished = [
        {
            "role": "assistant",
            "content": "let me check",
            "tool_calls": [{"type": "function", "function": {"name": "python", "arguments": {}}}],
        }
    ]
    completions = [say("7"), say("7"), say("7"), say("boom"), unfinished, [], say("7")]
    truths = ["7", None, "", "7", "7", "7", "?"]
    with caplog.at_level(logging.WARNING):
        got = reward(
            prompts=None,
            completions=completions,
            completion_ids=None,
            ground_truth=truths,
            log_metric=log.metric,
        )
    # missing ground truth (None, "") and a raising checker -> None; unfinished / empty -> graded 0;
    # a checker that returns None (cannot grade) -> None
    assert got == [1.0, None, None, None, 0.0, 0.0, None]
    assert log.metrics["reward/correctness_unscored"] == [4.0]
    assert log.metrics["reward/correctness_unfinished"] == [1.0]
    assert "parser crashed" in caplog.text


def test_correctness_without_a_checker_is_a_loud_error():
    with pytest.raises(ValueError, match="no checker"):
        CorrectnessReward()(completions=[say("1")], ground_truth=["1"])


def test_correctness_with_a_named_checker():
    reward = CorrectnessReward(checker="number", checker_options={"rel_tol": 0.01})
    assert reward(
        completions=[say("The answer is 99.5"), say("The answer is 90")], ground_truth=[100, 100]
    ) == [1.0, 0.0]


# ---------------------------------------------------------------- the PTE penalty


def test_pte_penalty_hand_table_and_logs():
    log = Log()
    got = call(PTEPenalty(gamma=0.01), log=log)
    # correct PTEs 120, 285, 440: rel = (pte - 120) / (320 + 1e-6); the incorrect rollout gets 0
    assert got == pytest.approx([0.0, -165 / 320.000001, 0.0, -320 / 320.000001], rel=1e-12)
    assert [pte(r, 0.01).total for r in RECORDS] == PTE_BY_HAND
    assert log.metrics["reward/pte_penalty_mean"] == [
        pytest.approx((165 / 320.000001 + 320 / 320.000001) / 4)
    ]
    assert log.metrics["reward/pte_penalty_unscored"] == [0.0]
    assert set(log.metrics) == {"reward/pte_penalty_mean", "reward/pte_penalty_unscored"}  # pte/*: the callback
    assert log.extra["pte_penalty:pte"] == PTE_BY_HAND


def test_weighted_sum_is_the_documented_utility():
    correctness = call(CorrectnessReward())
    penalty = call(PTEPenalty(gamma=0.01))
    total = [c + 0.5 * p for c, p in zip(correctness, penalty, strict=True)]  # TRL's sum with weights [1, 0.5]
    assert total == pytest.approx([1.0, 1 - 0.5 * 165 / 320.000001, 0.0, 1 - 0.5 * 320 / 320.000001])


def test_pte_cost_options_reach_pte_rl_cost():
    log = Log()
    call(PTEPenalty(CostModel(gamma=0.01, cache="reuse")), log=log)
    # reuse: rollout 1's second turn prefills 150 - (100 + 20) = 30 -> 120 + 30 + 15 = 165
    assert log.extra["pte_penalty:pte"][1] == 165.0
    call(PTEPenalty(CostModel(gamma=0.01, attention="exact", delta=1.0)), log=log)
    assert log.extra["pte_penalty:pte"][0] == 100 + 0.01 * (100 * 20 + 20 * 19 / 2) + 20


def test_budget_methods_through_the_reward():
    got = call(PTEPenalty(gamma=0.01, method="budget", budget=200.0))
    assert got == pytest.approx([-0.6, -1.0, 0.0, -1.0])
    reward = PTEPenalty(gamma=0.01, method="budget", budget="ema", ema_decay=0.5)
    log = Log()
    got = call(reward, log=log)  # reference = mean of the correct PTEs = 845/3
    assert got == pytest.approx([-120 * 3 / 845, -1.0, 0.0, -1.0])  # min(1, 285 / 281.67) = 1
    assert log.metrics["reward/pte_penalty_budget_mean"] == [pytest.approx(845 / 3)]
    assert reward.reference.get("t") == pytest.approx(845 / 3)


def test_gate_none_logs_without_penalising_and_needs_no_correctness():
    records = [Trajectory([Turn(100, 20)], task_id="t"), Trajectory([Turn(200, 20)], task_id="t")]
    log = Log()
    assert call(PTEPenalty(gamma=0.01, gate="none", name="pte_monitor"), records=records, log=log) == [
        0.0,
        0.0,
    ]
    assert log.extra["pte_monitor:pte"] == [120.0, 240.0]
    assert set(log.metrics) == {"reward/pte_monitor_unscored"}


def test_the_same_penalty_over_tokens_and_calls():
    assert call(CostPenalty("generated_tokens")) == pytest.approx([0.0, -10 / 10.000001, 0.0, -0.0])
    assert call(CostPenalty("tool_calls")) == pytest.approx([0.0, -1 / 1.000001, 0.0, -1 / 1.000001])
    assert CostPenalty("generated_tokens").__name__ == "token_penalty"
    assert CostPenalty("tool_calls").__name__ == "call_penalty"


def test_group_keys_split_groups():
    # a named column: two tasks of two rollouts each, min-max within each task, not over the batch
    got = call(PTEPenalty(gamma=0.01, group_by="task_id"), task_id=["a", "a", "b", "b"])
    assert got == pytest.approx([0.0, -1.0, 0.0, 0.0], abs=1e-7)
    # auto: the records' own task_id comes first (all four are task "t": one group of three correct)
    assert call(PTEPenalty(gamma=0.01), task_id=["a", "a", "b", "b"]) == call(PTEPenalty(gamma=0.01))
    # records without a task_id: the prompt_id column groups them
    untasked = [Trajectory(r.turns, correct=r.correct) for r in RECORDS]
    got = call(PTEPenalty(gamma=0.01), records=untasked, prompt_id=["a", "a", "b", "b"])
    assert got == pytest.approx([0.0, -1.0, 0.0, 0.0], abs=1e-7)
    # positional groups of 2 over the batch (TRL's own layout) give the same split
    got = call(PTEPenalty(gamma=0.01, group_size=2), task_id=["x"] * 4)
    assert got == pytest.approx([0.0, -1.0, 0.0, 0.0], abs=1e-7)
    with pytest.raises(ValueError, match="prompt_id"):
        call(PTEPenalty(gamma=0.01, group_by="prompt_id"))


# ---------------------------------------------------------------- bad input


def test_bad_records_and_empty_batches(caplog):
    records = [r.to_dict() for r in RECORDS[:2]] + [None, {"turns": [{"bogus": 1}]}]
    log = Log()
    with caplog.at_level(logging.WARNING):
        got = PTEPenalty(gamma=0.01)(
            completions=[say("x")] * 4, trajectory=records, task_id=["t"] * 4, log_metric=log.metric
        )
    assert got == pytest.approx([0.0, -1.0, None, None], abs=1e-7)
    assert log.metrics["reward/pte_penalty_unscored"] == [2.0]
    assert "not a Trajectory.to_dict() record" in caplog.text
    assert PTEPenalty(gamma=0.01)(prompts=[], completions=[], completion_ids=[], trajectory=[]) == []
    # unknown correctness: gated rewards are unscored, ungated ones are not
    unknown = [Trajectory([Turn(100, 20)], task_id="t", ground_truth=None)]
    assert call(PTEPenalty(gamma=0.01, checker=exact_match), records=unknown) == [None]
    assert call(PTEPenalty(gamma=0.01, gate="all", method="budget", budget=100), records=unknown) == [-1.0]
    with pytest.raises(ValueError, match="expected 4 records"):
        PTEPenalty(gamma=0.01)(completions=[say("x")] * 4, trajectory=records[:3])


def test_pte_without_records_or_tokenizer_is_a_configuration_error():
    with pytest.raises(ValueError, match="tokenizer"):
        PTEPenalty(gamma=0.01)(completions=[say("x")], ground_truth=["x"], checker=exact_match)
    with pytest.raises(ValueError, match="gamma"):
        PTEPenalty(gamma=None)


def test_token_measures_fall_back_to_completion_ids():
    reward = CostPenalty("generated_tokens", checker=exact_match)
    got = reward(
        completions=["7", "7", "8"],
        completion_ids=[[0] * 10, [0] * 30, [0] * 5],
        ground_truth=["7"] * 3,
        prompts=["p"] * 3,
    )
    assert got == pytest.approx([0.0, -20 / 20.000001, 0.0])


# ---------------------------------------------------------------- rebuilding turns from messages


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "python",
            "description": "run code",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
        },
    }
]
PROMPT = [
    {"role": "system", "content": "you are a helpful assistant"},
    {"role": "user", "content": "what is 6*7"},
]
CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [{"type": "function", "function": {"name": "python", "arguments": {"code": "print(6*7)"}}}],
}
COMPLETION = [
    CALL,
    {"role": "tool", "name": "python", "content": "42"},
    {"role": "assistant", "content": "the answer is 42"},
]


def test_rebuild_matches_the_engine_token_by_token(tokenizer):
    def render(messages, gen):
        return tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False, add_generation_prompt=gen)

    # What an engine fed and got, counted independently of the tokenizer (conftest.count_tokens):
    context_0 = count_tokens(render(PROMPT, True))
    decode_0 = count_tokens(render(PROMPT + [CALL], False)) - context_0
    context_1 = count_tokens(render(PROMPT + COMPLETION[:2], True))
    decode_1 = count_tokens(render(PROMPT + COMPLETION, False)) - context_1
    assert decode_0 == count_tokens(
        '<tool_call>{"name": "python", "arguments": {"code": "print(6*7)"}}</tool_call><|im_end|>'
    )
    (rebuilt,), source = trajectories([PROMPT], [COMPLETION], [[0] * 99], {}, tokenizer, TOOLS)
    assert source == "template"
    assert [(t.context_tokens, t.decode_tokens) for t in rebuilt.turns] == [
        (context_0, decode_0),
        (context_1, decode_1),
    ]
    assert rebuilt.turns[0].tool_tokens == context_1 - context_0 - decode_0
    assert rebuilt.num_tool_calls == 1
    # the PTE reward prices the rebuild exactly as it prices the same turns given as a record
    log_rebuilt, log_record = Log(), Log()
    PTEPenalty(gamma=0.01, tokenizer=tokenizer, tools=TOOLS, checker=exact_match)(
        prompts=[PROMPT],
        completions=[COMPLETION],
        completion_ids=[[0] * 99],
        ground_truth=["the answer is 42"],
        log_metric=log_rebuilt.metric,
        log_extra=log_rebuilt.column,
    )
    call(PTEPenalty(gamma=0.01), records=[Trajectory(rebuilt.turns, correct=True)], log=log_record)
    assert log_rebuilt.extra["pte_penalty:pte"] == log_record.extra["pte_penalty:pte"]
    assert log_rebuilt.metrics["reward/pte_penalty_unscored"] == [0.0]  # graded correct by the checker


def test_rebuild_single_turn_uses_the_sampled_ids(tokenizer):
    (rebuilt,), _ = trajectories([PROMPT], [say("the answer is 42")], [[5] * 7], {}, tokenizer, None)
    assert rebuilt.turns[0].decode_tokens == 7  # len(completion_ids), not a re-tokenisation
    assert rebuilt.turns[0].context_tokens == count_tokens(
        tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    )
    (plain,), _ = trajectories(["what is the answer"], ["42"], [[1, 2, 3]], {}, tokenizer, None)
    assert [(t.context_tokens, t.decode_tokens) for t in plain.turns] == [(4, 3)]
    (empty,), _ = trajectories([PROMPT], [[]], [[]], {}, tokenizer, None)
    assert empty.turns == []


class OneTrainer:
    """Stands in for a GRPOTrainer: rewards get its bound ``_log_metric`` (TRL passes ``self._log_metric``)."""

    def __init__(self):
        self.log = Log()

    def _log_metric(self, name, value):
        self.log.metric(name, value)


def test_rebuilt_pte_logs_the_pte_summary_once_per_run(tokenizer):
    """TRL's own tool loop: no rollout records, so the PTE reward logs pte/* of the turns it rebuilt, and
    only the first PTE reward of the run does (one owner); with records it logs none (the callback's)."""
    context = count_tokens(tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True))
    ids = [[0] * 10, [0] * 20, [0] * 30]  # single-turn: decode = len(completion_ids)
    texts = ["the answer is 42", "the answer is 41", "the answer is 42"]  # correct, incorrect, correct
    # By hand, gamma = 0.01: PTE_j = C + 0.01 * C * D_j, with C the rendered prompt's tokens.
    by_hand = [context * (1 + 0.01 * d) for d in (10, 20, 30)]
    trainer = OneTrainer()
    log_metric = trainer._log_metric  # TRL hands every reward of a batch the same bound method
    first, second = (PTEPenalty(gamma=0.01, tokenizer=tokenizer, checker=exact_match, name=n) for n in ("a", "b"))
    for reward in (first, second, first):
        reward(prompts=[PROMPT] * 3, completions=[say(t) for t in texts], completion_ids=ids,
               ground_truth=["the answer is 42"] * 3, log_metric=log_metric)
    logged = trainer.log.metrics
    assert logged["pte/mean"] == pytest.approx([sum(by_hand) / 3] * 2)  # twice: reward "a", two batches
    assert logged["pte/median"] == pytest.approx([by_hand[1]] * 2)
    assert logged["pte/correct_mean"] == pytest.approx([(by_hand[0] + by_hand[2]) / 2] * 2)
    assert logged["pte/incorrect_mean"] == pytest.approx([by_hand[1]] * 2)
    decode_share = 0.01 * context * 60 / sum(by_hand)
    assert logged["pte/decode_share"] == pytest.approx([decode_share] * 2)
    assert logged["pte/prefill_share"] == pytest.approx([1 - decode_share] * 2)
    assert len(logged["reward/a_mean"]) == 2 and len(logged["reward/b_mean"]) == 1  # their own keys pass
    # From the rollout's records: no pte/* from a reward, whoever else logs.
    records = Log()
    call(PTEPenalty(gamma=0.01), log=records)
    assert not [key for key in records.metrics if key.startswith("pte/")]

# ---------------------------------------------------------------- TRL's contract: names, pickling

FACTORIES = [
    lambda: CorrectnessReward(checker="math"),
    lambda: PTEPenalty(gamma=0.01, method="budget", budget="ema"),
    lambda: CostPenalty("generated_tokens", method="group_zscore"),
    lambda: KimiLengthReward(),
    lambda: DAPOOverlongReward(max_tokens=10, cache_tokens=4),
    lambda: OTCToolReward(),
    lambda: LinearTokenPenalty(),
    lambda: LinearCallPenalty(),
]


@pytest.mark.parametrize("factory", FACTORIES)
def test_rewards_pickle_and_keep_their_log_key(factory):
    reward = factory()
    first = call(reward)  # state (the EMA reference) travels with the object
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == reward.__name__
    assert call(clone) == call(reward)
    assert all(r is None or math.isfinite(r) for r in first)


def test_log_keys():
    names = [f().__name__ for f in FACTORIES]
    assert names == [
        "correctness",
        "pte_penalty",
        "token_penalty",
        "kimi_length",
        "dapo_overlong",
        "otc_tool",
        "linear_token_penalty",
        "linear_call_penalty",
    ]


@pytest.mark.slow  # importing trl's GRPOTrainer costs ~45 s of CPU on 2 cores
def test_trl_calculate_rewards_accepts_them():
    """TRL's own `_calculate_rewards`: extra fields reach the functions, None becomes NaN, metrics flow."""
    from types import SimpleNamespace

    from accelerate import PartialState
    from trl import GRPOTrainer

    PartialState(cpu=True)
    funcs = [CorrectnessReward(), PTEPenalty(gamma=0.01)]
    metrics: dict[str, list[float]] = defaultdict(list)
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(device="cpu", is_main_process=True),
        reward_funcs=funcs,
        reward_processing_classes=[None, None],
        reward_func_names=[f.__name__ for f in funcs],
        environments=None,
        state=SimpleNamespace(global_step=0),
        args=SimpleNamespace(report_to=[]),
        _log_completion_extra=lambda column, values: None,
        _log_metric=lambda name, value: metrics[name].append(value),
    )
    records = [r.to_dict() for r in RECORDS[:3]] + [None]
    inputs = [
        {"prompt": [{"role": "user", "content": "q"}], "task_id": "t", "ground_truth": "x", "trajectory": rec}
        for rec in records
    ]
    rewards = GRPOTrainer._calculate_rewards(
        trainer, inputs, [i["prompt"] for i in inputs], [say("x")] * 4, [[1]] * 4
    )
    got = rewards.tolist()
    assert got[:3] == [[1.0, 0.0], [1.0, pytest.approx(-1.0, abs=1e-7)], [0.0, 0.0]]
    assert all(math.isnan(v) for v in got[3])  # unscored by both: TRL gives the row zero advantage
    assert metrics["reward/pte_penalty_mean"] == [pytest.approx(1 / 3, abs=1e-7)]  # terms 0, 1, 0
    assert not [key for key in metrics if not key.startswith("reward/")]

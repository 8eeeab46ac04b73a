"""A real GRPOTrainer step on CPU with pte_rl's rollout_func (multi-turn episodes, env_mask, trajectories), the
advantage floor, and the metrics callback as the one producer of its keys, sharing the rewards' one gather."""

from __future__ import annotations

import pytest
from rollout_helpers import (
    ForceScript,
    build_byte_tokenizer,
    build_tiny_model,
    count_tokens,
    one_torch_thread,
)

from pte_rl.checkers import NumberChecker
from pte_rl.rollout.env import Environment
from pte_rl.tools import calculator

CALL = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "6*7"}}\n</tool_call>'
SCRIPTS = {"6*7": [CALL, "\\boxed{42}"], "9-2": ["\\boxed{7}"]}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_torch_thread()


def _scripted_grpo(tmp_path, monkeypatch):
    """A random tiny model forced to emit SCRIPTS, a two-prompt environment, and a one-step GRPOConfig."""
    from datasets import Dataset
    from trl import GRPOConfig

    from pte_rl.rollout import trl_driver as trl_rollout
    from pte_rl.rollout.backends import TransformersBackend

    tokenizer = build_byte_tokenizer()
    model_dir = build_tiny_model(tmp_path / "model", tokenizer)
    rows = {
        "prompt": [[{"role": "system", "content": "Use tools."}, {"role": "user", "content": f"What is {q}?"}]
                   for q in ("6*7", "9-2")],
        "ground_truth": ["42", "7"],
        "task_id": ["six-seven", "nine-two"],
    }
    env = Environment("scripted", Dataset.from_dict(rows), [calculator], NumberChecker(), max_turns=3)

    # The random model is made to emit the scripted turns; the trainer's own backend runs it.
    force = ForceScript(tokenizer, SCRIPTS)
    monkeypatch.setattr(trl_rollout, "TransformersBackend",
                        lambda model, tok, eos_ids: TransformersBackend(model, tok, eos_ids, logits_processors=[force]))
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, gradient_checkpointing=False, max_steps=1,
        per_device_train_batch_size=4, num_generations=2, max_completion_length=160, learning_rate=1e-4,
        report_to="none", logging_steps=1, save_strategy="no", seed=0, shuffle_dataset=False,
    )
    return tokenizer, model_dir, env, args


def test_grpo_step_with_rollout_func(tmp_path, monkeypatch):
    from trl import GRPOTrainer

    from pte_rl.pricing.trajectory import Trajectory
    from pte_rl.rollout.trl_driver import make_rollout_func

    tokenizer, model_dir, env, args = _scripted_grpo(tmp_path, monkeypatch)
    seen: dict = {}

    def correct(prompts, completions, completion_ids, trajectory, ground_truth, task_id, prompt_id, **kwargs):
        seen.update(trajectory=trajectory, ground_truth=ground_truth, task_id=task_id, prompt_id=prompt_id,
                    completion_ids=completion_ids)
        return [1.0 if Trajectory.from_dict(t).correct else 0.0 for t in trajectory]

    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[correct], args=args, train_dataset=env.dataset,
                          processing_class=tokenizer, rollout_func=make_rollout_func(env))
    trainer.train()

    assert trainer.state.global_step == 1
    trajectories = [Trajectory.from_dict(t) for t in seen["trajectory"]]
    assert len(trajectories) == 4 and sorted(seen["task_id"]) == ["nine-two", "nine-two", "six-seven", "six-seven"]
    by_task = {t.task_id: t for t in trajectories}
    assert len(by_task["six-seven"].turns) == 2 and len(by_task["nine-two"].turns) == 1
    assert all(t.correct for t in trajectories)
    assert len(set(seen["prompt_id"])) == 2
    # TRL counted only the model's tokens (env_mask) in the completion lengths it logged.
    model_tokens = [t.decode_tokens for t in trajectories]
    assert model_tokens.count(count_tokens(CALL) + 1 + count_tokens("\\boxed{42}") + 1) == 2
    logged = trainer.state.log_history[0]
    assert logged["completions/mean_length"] == pytest.approx(sum(model_tokens) / 4)
    assert logged["reward"] == pytest.approx(1.0)
    six = by_task["six-seven"]
    longest = six.turns[0].decode_tokens + six.turns[0].tool_tokens + six.turns[1].decode_tokens
    assert max(len(c) for c in seen["completion_ids"]) == longest


def test_floor_correct_advantages_by_hand():
    import torch

    from pte_rl.training.trainer import floor_correct_advantages

    advantages = torch.tensor([-1.0, 0.5, -0.5, -2.0, -0.1])
    correctness = torch.tensor([1.0, 1.0, 0.0, float("nan"), 0.75])
    got, raised = floor_correct_advantages(advantages, correctness, 0.0)
    assert got.tolist() == [0.0, 0.5, -0.5, -2.0, 0.0] and raised == 2  # incorrect and unscored: unchanged
    got, raised = floor_correct_advantages(advantages, correctness, -0.5)
    assert got.tolist() == pytest.approx([-0.5, 0.5, -0.5, -2.0, -0.1]) and raised == 1
    per_token = torch.tensor([[-1.0, 0.25], [-1.0, -1.0]])
    got, raised = floor_correct_advantages(per_token, torch.tensor([1.0, 0.0]), 0.0)
    assert got.tolist() == [[0.0, 0.25], [-1.0, -1.0]] and raised == 1
    with pytest.raises(ValueError, match="same length"):
        floor_correct_advantages(advantages, torch.tensor([1.0]), 0.0)


def test_grpo_step_with_a_floor_under_correct_advantages(tmp_path, monkeypatch):
    """A real GRPOTrainer step: every rollout is correct, a cost reward ranks them, and the costly half
    (negative advantage in plain GRPO) trains with advantage 0 instead."""
    from pte_rl.pricing.trajectory import Trajectory
    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.training.trainer import grpo_trainer_class

    tokenizer, model_dir, env, args = _scripted_grpo(tmp_path, monkeypatch)

    def correctness(prompts, completions, completion_ids, trajectory, **kwargs):
        return [1.0 if Trajectory.from_dict(t).correct else 0.0 for t in trajectory]

    def cost(prompts, completions, completion_ids, trajectory, **kwargs):
        return [-0.5 * (i % 2) for i in range(len(trajectory))]  # the second of each group pays

    seen: list = []

    def trainer(floor):
        base = grpo_trainer_class(floor)

        class Recording(base):
            def _generate_and_score_completions(self, inputs):
                output = super()._generate_and_score_completions(inputs)
                seen.append(output["advantages"].tolist())
                return output

        return Recording(model=str(model_dir), reward_funcs=[correctness, cost], args=args,
                         train_dataset=env.dataset, processing_class=tokenizer, rollout_func=make_rollout_func(env))

    plain = trainer(None)
    assert type(plain).__mro__[1].__name__ == "GRPOTrainer"
    plain.train()
    floored = trainer(0.0)
    floored.train()
    assert floored.state.global_step == 1
    assert [a for a in seen[0] if a < 0] and all(a > 0 for a in seen[0][0::2])  # plain GRPO: costly ones < 0
    assert seen[1] == [pytest.approx(max(a, 0.0)) for a in seen[0]]
    assert floored.state.log_history[0]["advantages/floored_frac"] == pytest.approx(0.5)

    def named_otherwise(prompts, completions, completion_ids, trajectory, **kwargs):
        return [1.0] * len(trajectory)

    with pytest.raises(ValueError, match="named 'correctness'"):
        grpo_trainer_class(0.0)(model=str(model_dir), reward_funcs=[named_otherwise], args=args,
                                train_dataset=env.dataset, processing_class=tokenizer,
                                rollout_func=make_rollout_func(env))


def test_the_callback_and_the_rewards_share_one_gather(tmp_path, monkeypatch):
    """Rank 1 of 2: the callback gathers the batch through gather_batch, and a reward function given the
    same records afterwards gets the same merged batch without a second gather."""
    from pte_rl.pricing.cost import CostModel
    from pte_rl.pricing.trajectory import Trajectory, Turn
    from pte_rl.rewards import distributed
    from pte_rl.training.tracking import LocalMetricsCallback

    a, b, c = (Trajectory([Turn(100, 10 * k)], id=name, correct=True).to_dict() for k, name in enumerate("ABC", 1))
    gathers = []
    monkeypatch.setattr(distributed, "world", lambda: (1, 2))
    monkeypatch.setattr(distributed, "_all_gather", lambda local, rank, size: gathers.append(local) or ([a, *local], 1))
    distributed.clear_cache()
    records = [b, c]  # this rank's share; rank 0 has A
    metrics = LocalMetricsCallback(tmp_path, cost_model=CostModel(gamma=0.01)).on_rollout_batch(records)
    assert metrics["pte/mean"] == pytest.approx((110 + 120 + 130) / 3)  # A, B, C: 100 + 0.01 * 100 * 10k
    merged, offset = distributed.gather_batch(records)  # what each reward function does next
    assert len(gathers) == 1 and offset == 1 and [r["id"] for r in merged] == ["A", "B", "C"]
    distributed.clear_cache()


def test_grpo_step_logs_each_metric_once_priced_by_the_callback(tmp_path, monkeypatch):
    """metrics.jsonl after a real GRPO step: every key of the metrics callback is that of the step's
    trajectories priced with the callback's one cost model (cache=evict), although a reward prices PTE
    with cache=reuse and another reward still logs pte/* and friends itself (the old second producer,
    whose values TRL would have averaged in)."""
    import json

    from trl import GRPOTrainer

    from pte_rl.pricing.cost import CostModel
    from pte_rl.pricing.trajectory import Trajectory
    from pte_rl.rewards import load_preset
    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.training.metrics import batch_metrics
    from pte_rl.training.tracking import LocalMetricsCallback, produced_here

    tokenizer, model_dir, env, args = _scripted_grpo(tmp_path, monkeypatch)
    evict, reuse = CostModel(gamma=0.01), CostModel(gamma=0.01, cache="reuse")
    seen: list = []

    def second_producer(prompts, completions, completion_ids, trajectory, log_metric, **kwargs):
        seen.extend(trajectory)
        for key, value in batch_metrics(trajectory, reuse).items():
            log_metric(key, value)
        log_metric("reward/second_producer_mean", 0.5)
        return [0.0] * len(trajectory)

    callback = LocalMetricsCallback(tmp_path / "run", cost_model=evict, plots=False)
    preset, _, _ = load_preset("pte", cost_model=reuse, checker=env.check_answer)  # the recipe's default rewards
    rewards = [*preset, second_producer]
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=rewards, args=args, train_dataset=env.dataset,
                          processing_class=tokenizer, rollout_func=callback.observe(make_rollout_func(env)),
                          callbacks=[callback])
    trainer.train()

    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    trajectories = [Trajectory.from_dict(t) for t in seen]
    expected, blend = batch_metrics(trajectories, evict), batch_metrics(trajectories, reuse)
    assert {k for k in line if produced_here(k)} == expected.keys()
    for key, value in expected.items():
        assert line[key] == pytest.approx(value, rel=1e-6), key  # TRL's channel carries float32
    assert blend["pte/mean"] < expected["pte/mean"] * 0.99  # reuse prices turn 2's context once: an average differs
    # By hand: two episodes of two turns (a calculator call, then the answer), two of one turn, all correct.
    answer_42, answer_7 = count_tokens("\\boxed{42}") + 1, count_tokens("\\boxed{7}") + 1
    assert (line["turns/mean"], line["accuracy"], line["tools/calls/calculator"]) == (1.5, 1.0, 0.5)
    assert line["tokens/generated_mean"] == pytest.approx((2 * (count_tokens(CALL) + 1 + answer_42) + 2 * answer_7) / 4)
    assert line["reward/second_producer_mean"] == 0.5
    assert all(any(k.startswith(f"reward/{f.__name__}_") for k in line) for f in preset)  # theirs pass


def test_grpo_step_with_turn_credit_spreads_a_penalty_over_turns_by_their_cost(tmp_path, monkeypatch):
    """A real GRPOTrainer step with credit='turn': all rollouts are correct and the second of each group pays a
    cost penalty. Its advantage (plain GRPO: the same on every token) is spread per token over its turns in
    proportion to their attributed PTE, which is worked out here from the rollout's own turn records."""
    import torch

    from pte_rl.pricing.attribution import attribute
    from pte_rl.pricing.cost import CostModel
    from pte_rl.pricing.trajectory import Trajectory
    from pte_rl.rollout.trl_adapter import turns_from_ids
    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.training.trainer import grpo_trainer_class

    tokenizer, model_dir, env, args = _scripted_grpo(tmp_path, monkeypatch)
    cost_model = CostModel(gamma=0.05)
    records: list = []

    def correctness(prompts, completions, completion_ids, trajectory, **kwargs):
        records.extend(Trajectory.from_dict(t) for t in trajectory)
        return [1.0 if Trajectory.from_dict(t).correct else 0.0 for t in trajectory]

    def cost(prompts, completions, completion_ids, trajectory, **kwargs):
        return [-0.5 * (i % 2) for i in range(len(trajectory))]  # the second of each group pays

    seen: list = []
    base = grpo_trainer_class(None, credit="turn", cost_model=cost_model)

    class Recording(base):
        def adjust_advantages(self, advantages, rewards_per_func, batch):
            adjusted = super().adjust_advantages(advantages, rewards_per_func, batch)
            seen.append((advantages.clone(), adjusted.clone(), batch.policy_mask.clone(), batch.prompt_mask.clone()))
            return adjusted

    trainer = Recording(model=str(model_dir), reward_funcs=[correctness, cost], args=args,
                        train_dataset=env.dataset, processing_class=tokenizer, rollout_func=make_rollout_func(env))
    trainer.train()
    assert trainer.state.global_step == 1
    (plain, spread, policy_mask, prompt_mask), = seen
    assert spread.shape == policy_mask.shape and len(records) == 4
    two_turn_payers = 0
    for row, trajectory in enumerate(records):
        mask, prompt_length = policy_mask[row].int().tolist(), int(prompt_mask[row].sum())
        runs = turns_from_ids(prompt_length, len(mask), mask)
        # the mask's runs are the rollout's turns, with the rollout's own counts
        assert [(context, decode) for context, decode, _ in runs] == [
            (t.context_tokens, t.decode_tokens) for t in trajectory.turns]
        spans = [(context - prompt_length, context - prompt_length + decode) for context, decode, _ in runs]
        if plain[row] >= 0 or len(spans) < 2:  # correctness is the same for all: A_correct = 0
            assert torch.all(spread[row] == plain[row])
            continue
        two_turn_payers += 1
        shares = [s.total for s in attribute(trajectory, cost_model)]
        for (start, end), share in zip(spans, shares, strict=True):
            expected = plain[row].item() * len(spans) * share / sum(shares)
            assert spread[row, start:end].tolist() == pytest.approx([expected] * (end - start), rel=1e-5)
        first, last = spans[0], spans[-1]
        assert spread[row, first[0]].item() < plain[row].item() < spread[row, last[0]].item()  # turn 0 is to blame
    assert two_turn_payers == 1  # the six-seven group's second rollout (two turns); nine-two's has one turn
    logged = trainer.state.log_history[0]
    assert logged["credit/spread_frac"] == pytest.approx(0.25)
    assert logged["credit/turn1_multiplier"] > 1.0 > logged["credit/turn2_multiplier"]

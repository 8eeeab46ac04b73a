"""A real GRPOTrainer step on CPU with pte_rl's rollout_func: multi-turn episodes, env_mask, trajectories."""

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

    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.pricing.trajectory import Trajectory

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
    assert max(len(c) for c in seen["completion_ids"]) == six.turns[0].decode_tokens + six.turns[0].tool_tokens + six.turns[1].decode_tokens


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
    from pte_rl.training.trainer import grpo_trainer_class
    from pte_rl.rollout.trl_driver import make_rollout_func
    from pte_rl.pricing.trajectory import Trajectory

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

"""pte_rl.rollout.trl_adapter: every row of its table of TRL touchpoints, pinned on the installed TRL.

Each test fails on a TRL (or transformers) version where the touchpoint no longer holds: the member
is gone, takes other parameters, or no longer does what pte_rl relies on. Signatures and source are
read with ``inspect`` on ``trl.GRPOTrainer``; behaviour is checked on one real small trainer (a random
two-layer Qwen2 on CPU, built once for the module).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import tokenize
from pathlib import Path
from types import SimpleNamespace

import pytest
from rollout_helpers import build_byte_tokenizer, build_tiny_model, one_torch_thread

from pte_rl.rollout import trl_adapter

ROOT = Path(__file__).resolve().parent.parent


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.fixture(scope="module")
def grpo(tmp_path_factory):
    """``(trainer, tokenizer)``: a GRPOTrainer on a random tiny Qwen2, two reward functions, never trained."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    threads = one_torch_thread()
    next(threads)
    directory = tmp_path_factory.mktemp("trl_adapter")
    tokenizer = build_byte_tokenizer()
    model_dir = build_tiny_model(directory / "model", tokenizer)

    def correctness(completions, **kwargs):
        return [1.0 if "7" in str(c) else 0.0 for c in completions]

    def brevity(completions, **kwargs):
        return [-0.5] * len(completions)

    args = GRPOConfig(
        output_dir=str(directory / "out"), use_cpu=True, bf16=False, max_steps=1, per_device_train_batch_size=2,
        num_generations=2, max_completion_length=8, report_to="none", save_strategy="no",
    )
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "3+4?"}]] * 2})
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[correctness, brevity], args=args,
                          train_dataset=dataset, processing_class=tokenizer)
    yield trainer, tokenizer
    with contextlib.suppress(StopIteration):
        next(threads)


# --- the rollout_func contract -----------------------------------------------------------------------


def test_rollout_func_is_called_with_the_prompts_and_the_trainer():
    from trl import GRPOTrainer

    assert "rollout_func" in parameters(GRPOTrainer.__init__)
    source = inspect.getsource(GRPOTrainer._generate)
    assert "self.rollout_func(prompts, self)" in source
    assert '"prompt_ids", "completion_ids", "logprobs"' in source  # the keys it requires; env_mask is optional
    assert "env_mask" in source and "extra_fields" in inspect.getsource(GRPOTrainer._generate_and_score_completions)


# --- metrics ------------------------------------------------------------------------------------------


def test_log_metric_is_the_reward_functions_channel(grpo):
    from trl import GRPOTrainer

    assert parameters(GRPOTrainer._log_metric) == ["self", "name", "value"]
    # Rewards get the attribute at every call, so claim_metrics' replacement on the instance reaches them.
    assert 'reward_kwargs["log_metric"] = self._log_metric' in inspect.getsource(GRPOTrainer._calculate_rewards)
    trainer, _ = grpo
    original = trainer._log_metric
    channel = trl_adapter.claim_metrics(trainer, lambda key: key.startswith("pte/"), "the test")
    try:
        assert channel == original and trl_adapter.claim_metrics(trainer, bool, "another") == original
        assert isinstance(trainer._log_metric, trl_adapter.GuardedLogMetric)
    finally:
        trainer._log_metric = original


def test_metrics_store_is_averaged_into_the_log(grpo):
    trainer, _ = grpo
    trainer.model.train()  # as in a training step (from_pretrained leaves the model in eval mode)
    assert set(trainer._metrics) == {"train", "eval"} and trl_adapter.metric_mode(trainer) == "train"
    for value in (0.25, 0.75, 1.0):
        trl_adapter.record_metric(trainer, "advantages/floored_frac", value)
    trainer.log({})
    assert trainer.state.log_history[-1]["advantages/floored_frac"] == pytest.approx(2.0 / 3)
    assert "advantages/floored_frac" not in trainer._metrics["train"]  # cleared after each log


def test_a_reward_claims_its_keys_on_the_trainer_its_log_metric_came_from(grpo):
    trainer, _ = grpo
    original = trainer._log_metric
    bound = trainer._log_metric  # TRL builds the reward kwargs once per batch: every reward holds this one
    assert bound.__func__.__name__ == "_log_metric" and bound.__self__ is trainer  # TRL's bound method
    owns = lambda key: key.startswith("pte/")  # noqa: E731
    try:
        channel = trl_adapter.reward_metrics_channel(bound, owns, "reward a")
        assert channel == original and isinstance(trainer._log_metric, trl_adapter.GuardedLogMetric)
        assert trl_adapter.reward_metrics_channel(bound, owns, "reward b") is None  # same batch, second reward
        assert trl_adapter.reward_metrics_channel(trainer._log_metric, owns, "reward a") == original  # next batch
        assert trl_adapter.reward_metrics_channel(trainer._log_metric, owns, "reward b") is None
        mine = []
        assert trl_adapter.reward_metrics_channel(mine.append, owns, "reward b") == mine.append  # not TRL's
    finally:
        trainer._log_metric = original

# --- the advantage hook -------------------------------------------------------------------------------


def test_calculate_rewards_returns_the_gathered_matrix(grpo):
    from trl import GRPOTrainer

    assert parameters(GRPOTrainer._calculate_rewards) == ["self", "inputs", "prompts", "completions",
                                                          "completion_ids_list"]
    assert "rewards_per_func = gather(rewards_per_func)" in inspect.getsource(GRPOTrainer._calculate_rewards)
    trainer, _ = grpo
    prompts = [[{"role": "user", "content": "3+4?"}]] * 2
    completions = [[{"role": "assistant", "content": "7"}], [{"role": "assistant", "content": "8"}]]
    inputs = [{"prompt": p} for p in prompts]
    rewards = trainer._calculate_rewards(inputs, prompts, completions, [[55], [56]])
    assert rewards.tolist() == [[1.0, -0.5], [0.0, -0.5]]  # (rows, reward functions), in reward_func_names order
    assert trl_adapter.reward_names(trainer) == ["correctness", "brevity"]


def test_generate_and_score_returns_this_process_advantages():
    from trl import GRPOTrainer

    assert parameters(GRPOTrainer._generate_and_score_completions) == ["self", "inputs"]
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "self.accelerator.process_index * len(prompts)" in source and '"advantages": advantages' in source
    for key in ('"prompt_mask"', '"completion_mask"', 'output["tool_mask"]'):
        assert key in source, key
    # how TRL turns the reward matrix into advantages, which turn credit splits the same way
    assert "(rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)" in source
    assert 'self.scale_rewards in ["group", "none"]' in source and "advantages / (std_rewards + 1e-4)" in source
    # per-token advantages (B, T) reach the loss as they are
    assert "if advantages.dim() == 1:" in inspect.getsource(GRPOTrainer._compute_loss)


def test_advantage_hook_hands_each_process_its_rows():
    import torch

    class FakeGRPO:  # TRL's two methods, as the table describes them, on process 1 of 2
        accelerator = SimpleNamespace(process_index=1)

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            return torch.arange(8.0).view(4, 2)  # gathered: 2 rows per process, 2 reward functions

        args = SimpleNamespace(num_generations=4, scale_rewards="group")
        reward_weights = torch.tensor([1.0, 0.5])

        def _generate_and_score_completions(self, inputs):
            self._calculate_rewards(inputs, None, None, None)
            return {"advantages": torch.tensor([0.5, -0.5]), "other": 1, "prompt_mask": torch.ones(2, 3),
                    "completion_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
                    "tool_mask": torch.tensor([[1, 0, 1], [1, 1, 1]])}

    seen = []

    class Hooked(trl_adapter.advantage_hook(FakeGRPO)):
        def adjust_advantages(self, advantages, rewards_per_func, batch):
            seen.append((rewards_per_func.tolist(), batch))
            return advantages * 2

    output = Hooked()._generate_and_score_completions([])
    (local, batch), = seen
    assert local == [[4.0, 5.0], [6.0, 7.0]] and output["advantages"].tolist() == [1.0, -1.0]
    assert batch.rows == slice(2, 4) and batch.all_rewards_per_func.shape == (4, 2)
    assert batch.policy_mask.tolist() == [[1, 0, 1], [1, 1, 0]]  # completion_mask * tool_mask
    assert (batch.num_generations, batch.scale_rewards, batch.multi_objective_aggregation) == (
        4, "group", "sum_then_normalize")
    assert output["other"] == 1 and trl_adapter.advantage_hook(FakeGRPO)().adjust_advantages(3, None, batch) == 3


# --- what TRL's own tool loop fed and got back --------------------------------------------------------


def test_generate_returns_the_ids_and_the_tool_mask(grpo):
    from trl import GRPOTrainer

    assert parameters(GRPOTrainer._generate) == ["self", "prompts"]
    assert "return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images" in (
        inspect.getsource(GRPOTrainer._generate))
    assert "self._generate(prompts)" in inspect.getsource(GRPOTrainer._generate_and_score_completions)
    loop = inspect.getsource(GRPOTrainer._tool_call_loop)  # 1 for sampled ids, 0 for the tool block after them
    assert "tool_mask[idx_with_tool] += [0] * tool_length + [1] * post_tool_length" in loop
    assert "prompt_ids[idx_with_tool] + completion_ids[idx_with_tool] + suffix_ids" in loop  # ids concatenated
    trainer, _ = grpo
    original = trainer._generate
    try:
        capture = trl_adapter.capture_generations(trainer)
        assert trl_adapter.capture_generations(trainer) is capture and trainer._generate is capture
        prompts = [[{"role": "user", "content": "3+4?"}]] * 2
        prompt_ids, completion_ids, tool_mask, completions = trainer._generate(prompts)[:4]
    finally:
        trainer._generate = original
    (batch,) = capture.batches
    assert batch["prompts"] == prompts and batch["prompt_ids"] == [list(ids) for ids in prompt_ids]
    assert batch["completion_ids"] == [list(ids) for ids in completion_ids] and batch["tool_mask"] is tool_mask is None
    assert batch["completions"] == completions and len(completions) == 2
    assert [[(t.context_tokens, t.decode_tokens) for t in traj.turns] for traj in capture.trajectories()] == [
        [(len(p), len(c))] for p, c in zip(prompt_ids, completion_ids, strict=True)]  # no tools: one turn each


def test_turns_from_ids_by_hand():
    # prompt of 10 ids; a call (3 ids), its result (3 ids), the answer (3 ids)
    assert trl_adapter.turns_from_ids(10, 9, [1, 1, 1, 0, 0, 0, 1, 1, 1]) == [(10, 3, 3), (16, 3, 0)]
    # two calls; the second's result was the last thing added (the answer was cut at the length limit)
    assert trl_adapter.turns_from_ids(5, 8, [1, 1, 0, 1, 1, 0, 0, 0]) == [(5, 2, 1), (8, 2, 3)]
    assert trl_adapter.turns_from_ids(7, 4, None) == [(7, 4, 0)]  # no tools: the completion is one turn
    assert trl_adapter.turns_from_ids(7, 0, []) == []

# --- tokenizer and end-of-turn ids --------------------------------------------------------------------


def test_tokenizer_and_eos_ids(grpo):
    trainer, tokenizer = grpo
    assert trainer._tokenizer is tokenizer and trl_adapter.text_tokenizer(trainer) is tokenizer
    assert tokenizer.eos_token_id in trl_adapter.trainer_eos_ids(trainer)
    processor = SimpleNamespace(tokenizer=tokenizer)  # a processor without TRL's _tokenizer: its .tokenizer
    assert trl_adapter.text_tokenizer(SimpleNamespace(processing_class=processor)) is tokenizer


# --- the generation engine ----------------------------------------------------------------------------


def test_vllm_members_of_the_trainer(grpo):
    from trl import GRPOTrainer

    trainer, _ = grpo
    assert trainer.use_vllm is False and trainer.vllm_mode == "colocate" and trl_adapter.vllm_engine(trainer) is None
    assert "self.vllm_generation = VLLMGeneration(" in inspect.getsource(GRPOTrainer.__init__)
    fake = SimpleNamespace(use_vllm=True, vllm_mode="server", vllm_generation="engine", args=None)
    assert trl_adapter.vllm_engine(fake) == ("server", "engine")


def test_vllm_generation_members():
    from trl.generation.vllm_client import VLLMClient
    from trl.generation.vllm_generation import VLLMGeneration

    assert {"tensor_parallel_size", "enable_sleep_mode", "mode"} <= set(parameters(VLLMGeneration.__init__))
    assert parameters(VLLMGeneration.sync_weights) == ["self"]
    source = inspect.getsource(VLLMGeneration)
    for member in ("self.llm = LLM(", "self.vllm_client = VLLMClient(", "self._llm_weights_sleeping = ",
                   'self.llm.wake_up(tags=["kv_cache"])', "self.llm.sleep(level=2)"):
        assert member in source, member
    # VLLMServerBackend's request (public API, pinned all the same).
    assert {"prompts", "n", "repetition_penalty", "temperature", "top_p", "top_k", "min_p", "max_tokens",
            "logprobs"} <= set(parameters(VLLMClient.generate))


def test_vllm_awake_wakes_and_puts_back_as_trl_does():
    calls = []
    llm = SimpleNamespace(wake_up=lambda tags: calls.append(("wake_up", tags)),
                          sleep=lambda level: calls.append(("sleep", level)))
    generation = SimpleNamespace(enable_sleep_mode=True, _llm_weights_sleeping=True, llm=llm,
                                 sync_weights=lambda: calls.append(("sync_weights",)))
    with trl_adapter.vllm_awake(generation) as engine:
        assert engine is llm and calls == [("sync_weights",), ("wake_up", ["kv_cache"])]
    assert calls[-1] == ("sleep", 2) and generation._llm_weights_sleeping is True
    awake = SimpleNamespace(enable_sleep_mode=False, llm=llm)
    with trl_adapter.vllm_awake(awake) as engine:
        assert engine is llm and len(calls) == 3  # no sleep mode: nothing to do


def test_unwrap_model_for_generation_and_the_wrapped_model(grpo):
    from trl.models.utils import unwrap_model_for_generation

    assert {"model", "accelerator", "gather_deepspeed3_params", "gradient_checkpointing_kwargs"} <= set(
        parameters(unwrap_model_for_generation))
    trainer, _ = grpo
    assert trainer.model_wrapped is trainer.model and trl_adapter.is_fsdp(trainer) is False
    assert trainer.is_fsdp_enabled is False
    with trl_adapter.unwrapped_model(trainer) as model:
        assert model is trainer.model and callable(model.generate)


def test_the_driver_follows_the_trainers_engine_through_the_adapter():
    from pte_rl.rollout.backends import VLLMBackend, VLLMServerBackend
    from pte_rl.rollout.trl_driver import trainer_backend

    llm = SimpleNamespace(llm_engine=SimpleNamespace(model_config=SimpleNamespace(max_model_len=512)))
    generation = SimpleNamespace(llm=llm, vllm_client="client", tensor_parallel_size=1, enable_sleep_mode=False)
    config = SimpleNamespace(max_position_embeddings=1024)

    def trainer(**fields):
        base = {"use_vllm": True, "vllm_mode": "colocate", "vllm_generation": generation, "eos_token_ids": [2, 5],
                "accelerator": SimpleNamespace(num_processes=1), "model": SimpleNamespace(config=config),
                "args": SimpleNamespace(), "is_fsdp_enabled": False}
        return SimpleNamespace(**{**base, **fields})

    tokenizer = SimpleNamespace(eos_token_id=2)
    with trainer_backend(trainer(), tokenizer) as backend:
        assert isinstance(backend, VLLMBackend) and backend.llm is llm and backend.eos_ids == {2, 5}
        assert backend.max_context == 512
    with trainer_backend(trainer(vllm_mode="server"), tokenizer) as backend:
        assert isinstance(backend, VLLMServerBackend) and backend.client == "client" and backend.max_context == 1024
    split = SimpleNamespace(**{**vars(generation), "tensor_parallel_size": 2})
    with pytest.raises(ValueError, match="tensor_parallel_size > 1"), trainer_backend(
            trainer(vllm_generation=split), tokenizer):
        pass
    with pytest.raises(ValueError, match="FSDP needs use_vllm=True"), trainer_backend(
            trainer(use_vllm=False, is_fsdp_enabled=True), tokenizer):
        pass


# --- nothing outside the adapter reaches into TRL ----------------------------------------------------

PRIVATE_NAMES = {
    "_calculate_rewards", "_generate_and_score_completions", "_log_metric", "vllm_generation", "model_wrapped",
    "unwrap_model_for_generation", "_llm_weights_sleeping", "is_fsdp_enabled", "reward_func_names", "_metrics",
    "_tokenizer", "_generate",
}


def private_uses(path: Path) -> list[str]:
    """``file:line: name`` of each TRL touchpoint named in code (not strings or comments), and of each
    ``from trl... import _x`` or import from a private ``trl`` module."""
    source = path.read_text(encoding="utf-8")
    found = []
    previous = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.string in PRIVATE_NAMES:
            attribute = previous is not None and previous.string == "."
            if attribute or token.string not in ("_metrics", "_tokenizer"):
                found.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string}")
        previous = token
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "trl":
            private = any(part.startswith("_") for part in node.module.split(".")) or any(
                alias.name.startswith("_") for alias in node.names)
            if private:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import ...")
    return found


def test_no_trl_touchpoint_outside_the_adapter():
    adapter = ROOT / "pte_rl" / "rollout" / "trl_adapter.py"
    files = [p for p in sorted((ROOT / "pte_rl").rglob("*.py")) + sorted((ROOT / "recipes").rglob("*.py"))
             if p != adapter]
    assert [use for path in files for use in private_uses(path)] == []
    assert len(private_uses(adapter)) >= 10  # the scan sees them where they are

"""pte_rl's rollout loop as TRL's ``rollout_func``, on the trainer's own generation backend.

    rollout_func = make_rollout_func(env)                  # or tools=[...], check_answer=...
    trainer = GRPOTrainer(model, reward_funcs, args=grpo_args, train_dataset=env.dataset,
                          processing_class=tokenizer, rollout_func=rollout_func)   # no tools=

TRL calls ``rollout_func(prompts, trainer)`` with the batch's prompts, already repeated
``num_generations`` times, and expects one completion per prompt. It returns::

    prompt_ids       the prompt rendered with the chat template and the tool schemas
    completion_ids   every turn's generated ids and the tool/template ids between them, concatenated
    logprobs         the generated ids' log-probabilities (TRL's convention); 0.0 on environment ids
    env_mask         1 on generated ids, 0 on environment ids (kept out of the loss by TRL)
    trajectory       one dict per completion (Trajectory.to_dict(); rebuild with Trajectory.from_dict)
    prompt_id        a short hash of the prompt: the GRPO group of the completion

TRL merges the extra keys into each sample's inputs, so reward functions receive ``trajectory`` and
``prompt_id`` as keyword arguments next to the dataset's own columns (``ground_truth``, ``task_id``).

The backend follows the trainer: ``use_vllm`` with ``vllm_mode="colocate"`` drives the trainer's
``vllm_generation.llm`` directly (one request per prompt, each with its own token limit, prefix-cache
hits recorded); ``vllm_mode="server"`` drives its ``VLLMClient``; otherwise ``model.generate`` on the
unwrapped model (TRL's ``unwrap_model_for_generation``, entered once per batch). TRL syncs the vLLM
weights before calling ``rollout_func``. Every trainer member beyond TRL's documented API is reached
through :mod:`pte_rl.rollout.trl_adapter`. Sampling comes from ``trainer.args`` (temperature, top_p,
top_k, min_p, repetition_penalty; ``max_completion_length`` is the budget over all turns).

Ground truth for grading: ``rollout_func`` receives only prompts, not the dataset rows. The
environment's train and eval splits are indexed once by their prompt messages (role and content; see
:func:`pte_rl.rollout.env.prompt_key`), which is how each completion finds its ``ground_truth`` and
``task_id``. A prompt that is not in the index (a dataset other than the environment's) is rolled out
but left ungraded (``correct=None``); its reward functions still get the dataset's columns from TRL.

Harness randomisation (``harness_family``, :class:`pte_rl.rollout.harness.HarnessFamily`): each GRPO group
(or each rollout) is rolled out under a harness drawn from the family: its prompt's system message, tool
names, schemas, call syntax and answer format, so the group's rewards favour the policy that reads the
harness it is given. The draw hashes (seed, step, prompt), so a group split over processes stays whole;
the trajectory's ``metadata["harness"]`` names it. A re-skinned environment (one fixed harness) is used as is.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pte_rl.rollout import trl_adapter
from pte_rl.rollout.backends import (
    GenerationBackend,
    SamplingConfig,
    TransformersBackend,
    VLLMBackend,
    VLLMServerBackend,
    eos_token_ids,
)
from pte_rl.rollout.env import Environment, prompt_key
from pte_rl.rollout.harness import HarnessFamily, Skin, make_skin
from pte_rl.rollout.loop import RolloutConfig, TaskInfo, run_rollouts

logger = logging.getLogger(__name__)


def build_task_index(*datasets: Any) -> dict[str, TaskInfo]:
    """Prompt key -> (ground truth, task id) over dataset rows; conflicting duplicates are left ungraded."""
    index: dict[str, TaskInfo] = {}
    conflicts = 0
    for dataset in datasets:
        if dataset is None:
            continue
        for prompt, truth, task_id in zip(dataset["prompt"], dataset["ground_truth"], dataset["task_id"], strict=True):
            key = prompt_key(prompt)
            info = TaskInfo(truth, None if task_id is None else str(task_id))
            if key in index and index[key].ground_truth != truth:
                index[key] = TaskInfo(None, None)
                conflicts += 1
            else:
                index.setdefault(key, info)
    if conflicts:
        logger.warning("%d prompts appear with different ground truths; they are left ungraded", conflicts)
    return index


class RolloutFunc:
    """A picklable ``rollout_func(prompts, trainer) -> dict`` (see the module docstring).

    Args:
        env: the environment (tools, checker, default ``max_turns``, and the splits that map prompts
            to ground truth).
        tools: the tools, when there is no environment (or to override its tools).
        check_answer: ``(answer_text, ground_truth) -> bool | None`` (None: ungraded); the
            environment's by default.
        max_turns: assistant turns per episode; the environment's by default.
        max_tokens_per_turn: optional cap on one turn's generated tokens.
        tool_timeout_s: wall-clock limit per tool call.
        max_tool_workers: calls of one turn running at once, per trajectory.
        max_tool_output_chars: cut every tool response to this many characters.
        answer_soft_failures: answer code blocks / calls written as text with an error instead of
            treating the message as the final answer.
        harness_family: draw each group's (or rollout's) harness from it (see the module docstring).
    """

    __name__ = "pte_rl_rollout"

    def __init__(
        self,
        env: Environment | None = None,
        *,
        tools: Sequence[Callable] | None = None,
        check_answer: Callable[[str, Any], bool | None] | None = None,
        max_turns: int | None = None,
        max_tokens_per_turn: int | None = None,
        tool_timeout_s: float = 30.0,
        max_tool_workers: int = 8,
        max_tool_output_chars: int | None = None,
        answer_soft_failures: bool = False,
        task_index: dict[str, TaskInfo] | None = None,
        harness_family: HarnessFamily | None = None,
    ):
        if env is None and tools is None:
            raise ValueError("make_rollout_func: give an environment, or tools (and a check_answer)")
        if harness_family is not None and getattr(env, "harness", None) is not None:
            raise ValueError("make_rollout_func: give a re-skinned environment or a harness_family, not both")
        self.env = env
        self.tools = list(tools) if tools is not None else list(env.tools)  # type: ignore[union-attr]
        self.check_answer = check_answer if check_answer is not None else (env.check_answer if env else None)
        self.max_turns = max_turns if max_turns is not None else (env.max_turns if env else 4)
        self.options: dict[str, Any] = {
            "max_tokens_per_turn": max_tokens_per_turn, "tool_timeout_s": tool_timeout_s,
            "max_tool_workers": max_tool_workers, "max_tool_output_chars": max_tool_output_chars,
            "answer_soft_failures": answer_soft_failures,
        }
        self._task_index = task_index
        self.harness_family = harness_family
        self._skins: dict[str, Skin] = {}
        RolloutConfig(max_turns=self.max_turns, **self.options)  # fail now on bad limits, not mid-training
        for harness in harness_family.members if harness_family else ():  # bad variants fail now too
            self.skin(harness)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.env is not None:
            state["_task_index"] = None  # rebuilt from the environment after unpickling
            state["tools"] = None
        state["_skins"] = {}  # closures over the tools, rebuilt on use
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.tools is None:
            self.tools = list(self.env.tools)

    @property
    def task_index(self) -> dict[str, TaskInfo]:
        if self._task_index is None:
            self._task_index = build_task_index(self.env.dataset, self.env.eval_dataset) if self.env else {}
        return self._task_index

    def skin(self, harness: Any) -> Skin:
        """The tools and checker under ``harness`` (made once per harness name)."""
        if harness.name not in self._skins:
            self._skins[harness.name] = make_skin(harness, self.tools, self.check_answer)  # type: ignore[arg-type]
        return self._skins[harness.name]

    def draw_skins(self, keys: list[str], step: int, process: int = 0) -> list[Skin] | None:
        """Each prompt's skin under the harness family (None without one)."""
        family = self.harness_family
        if family is None:
            return None
        return [self.skin(family.draw(key, step, f"{process}/{i}")) for i, key in enumerate(keys)]

    def config(self, args: Any) -> RolloutConfig:
        """The loop's limits and sampling from a GRPOConfig (or any object with its fields)."""
        sampling = SamplingConfig(
            temperature=float(args.temperature), top_p=float(getattr(args, "top_p", 1.0) or 1.0),
            top_k=int(getattr(args, "top_k", 0) or 0), min_p=float(getattr(args, "min_p", None) or 0.0),
            repetition_penalty=float(getattr(args, "repetition_penalty", 1.0) or 1.0),
        )
        return RolloutConfig(
            max_turns=self.max_turns, max_completion_length=int(args.max_completion_length), sampling=sampling,
            **self.options,
        )

    def __call__(self, prompts: list[list[dict]], trainer: Any) -> dict[str, list]:
        if not prompts or not isinstance(prompts[0], list):
            raise TypeError("rollout_func expects conversational prompts (lists of chat messages)")
        tokenizer = trl_adapter.text_tokenizer(trainer)
        keys = [prompt_key(p) for p in prompts]
        tasks = [self.task_index.get(k, TaskInfo()) for k in keys]
        step = int(getattr(getattr(trainer, "state", None), "global_step", 0) or 0)
        mode = trl_adapter.metric_mode(trainer)
        ids = [f"{t.task_id or 'prompt'}/step{step}/{i}" for i, t in enumerate(tasks)]
        skins = self.draw_skins(keys, step, int(getattr(getattr(trainer, "accelerator", None), "process_index", 0)))
        if skins is not None:
            prompts = [skin.prompt(p) for skin, p in zip(skins, prompts, strict=True)]
        with trainer_backend(trainer, tokenizer) as backend:
            results = run_rollouts(
                prompts, backend, tokenizer, self.tools, self.config(trainer.args), check_answer=self.check_answer,
                tasks=tasks, ids=ids,
                metadata={"env": self.env.name if self.env else None, "step": step, "mode": mode,
                          "engine": type(backend).__name__},
                harness=getattr(self.env, "harness", None),  # a re-skinned environment's (pte_rl.rollout.harness)
                skins=skins,
            )
        return {
            "prompt_ids": [r.prompt_ids for r in results],
            "completion_ids": [r.completion_ids for r in results],
            "logprobs": [r.logprobs for r in results],
            "env_mask": [r.env_mask for r in results],
            "trajectory": [r.trajectory.to_dict() for r in results],
            "prompt_id": [hashlib.sha1(k.encode()).hexdigest()[:12] for k in keys],
        }


def make_rollout_func(env: Environment | None = None, **options: Any) -> RolloutFunc:
    """TRL's ``rollout_func`` for an environment (or for bare tools + a checker): a
    :class:`RolloutFunc`, whose docstring lists the options."""
    return RolloutFunc(env, **options)


@contextlib.contextmanager
def trainer_backend(trainer: Any, tokenizer: Any) -> Iterator[GenerationBackend]:
    """The trainer's generation engine behind the backend interface, for one batch of rollouts."""
    eos = set(trl_adapter.trainer_eos_ids(trainer) or eos_token_ids(tokenizer))
    engine = trl_adapter.vllm_engine(trainer)
    if engine is not None:
        mode, generation = engine
        if mode == "server":
            yield VLLMServerBackend(
                trl_adapter.vllm_client(generation), eos, trainer.accelerator,
                max_context=getattr(trainer.model.config, "max_position_embeddings", None),
            )
            return
        if trl_adapter.vllm_tensor_parallel_size(generation) > 1:
            raise ValueError(
                "pte_rl's rollout does not support vllm_tensor_parallel_size > 1 in colocate mode (the ranks of a "
                "tensor-parallel group would have to run the same turns); use vllm_mode='server'"
            )
        with trl_adapter.vllm_awake(generation) as llm:
            yield VLLMBackend(llm, eos)
        return
    if trl_adapter.is_fsdp(trainer):
        raise ValueError(
            "pte_rl's rollout with FSDP needs use_vllm=True: FSDP forward passes are collective, and multi-turn "
            "episodes end at different turns on different ranks"
        )
    if getattr(trainer.args, "ds3_gather_for_generation", True) is False:
        raise ValueError(
            "pte_rl's rollout needs ds3_gather_for_generation=True: without gathered weights every rank must run "
            "the same number of forward passes, and multi-turn episodes end at different turns"
        )
    with trl_adapter.unwrapped_model(trainer) as model:
        yield TransformersBackend(model, tokenizer, eos_ids=eos)

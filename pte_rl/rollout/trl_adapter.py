"""Every place where pte_rl reaches into TRL (or transformers' Trainer) beyond their documented API.

pte_rl drives TRL's ``GRPOTrainer`` through its public, experimental ``rollout_func`` and needs a few
of the trainer's private members besides. They are all here, so that a TRL upgrade is checked in one
file (and by tests/test_trl_adapter.py, which pins each row on the installed TRL; "tf": transformers):

touchpoint                                       | what pte_rl uses it for                                  | checked on
------------------------------------------------ | -------------------------------------------------------- | ----------
GRPOTrainer(rollout_func=...), experimental      | the multi-turn rollout: TRL calls rollout_func(prompts,  | 1.16.0
                                                 | trainer), merges its extra keys into rewards' kwargs     |
GRPOTrainer._log_metric(name, value)             | the metrics callback's channel (rewards' log_metric):    | 1.16.0
                                                 | averaged over a logging step, then logged with TRL's     |
                                                 | metrics to every report_to backend                       |
GRPOTrainer._metrics[mode][key]                  | advantages/floored_frac, next to TRL's own metrics       | 1.16.0
GRPOTrainer._calculate_rewards(inputs, prompts,  | the (all processes' rows x reward functions) matrix TRL  | 1.16.0
  completions, completion_ids_list)              | builds advantages from (returned gathered)               |
GRPOTrainer._generate_and_score_completions(     | the batch whose 'advantages' (this process's rows, from  | 1.16.0
  inputs)                                        | process_index * n) the advantage floor raises and turn   |
                                                 | credit spreads per token; its 'prompt_mask',             |
                                                 | 'completion_mask', 'tool_mask' (the policy's tokens)     |
GRPOTrainer.reward_weights, args.scale_rewards,  | how TRL made advantages of the rewards (sum, then        | 1.16.0
  args.multi_objective_aggregation               | group-normalise): turn credit splits them the same way   |
  advantages (B, T) in _compute_loss             | per-token advantages are used as they are (no unsqueeze) |
GRPOTrainer.reward_func_names                    | the floor's correctness column                           | 1.16.0
GRPOTrainer._tokenizer                           | the text tokenizer (processing_class may be a processor) | 1.16.0
GRPOTrainer.eos_token_ids                        | where a turn ends (tokenizer + generation config EOS)    | 1.16.0
GRPOTrainer.use_vllm, .vllm_mode,                | the trainer's engine: VLLMGeneration .llm (colocate),    | 1.16.0
  .vllm_generation                               | .vllm_client (server), .tensor_parallel_size             |
VLLMGeneration.enable_sleep_mode,                | waking the colocated engine (weights, KV cache) as TRL's | 1.16.0
  ._llm_weights_sleeping, .sync_weights()        | own generate does, around pte_rl's llm.generate calls    |
trl.models.utils.unwrap_model_for_generation(    | the policy unwrapped (ZeRO-3 weights gathered) for       | 1.16.0
  model, accelerator, gather_deepspeed3_params=, | model.generate, once per rollout batch                   |
  gradient_checkpointing_kwargs=)                |                                                          |
transformers Trainer.model_wrapped,              | the model to unwrap; refusing FSDP without vLLM          | tf 5.25
  Trainer.is_fsdp_enabled                        |                                                          |
log_metric is the bound GRPOTrainer._log_metric  | TRL's own tool loop: the PTE reward claims pte/* on the  | 1.16.0
  (reward kwargs)                                | trainer it came from (one owner per run)                 |
GRPOTrainer._generate(prompts) -> (prompt_ids,   | the ids TRL really fed and got back, and its tool_mask   | 1.16.0
  completion_ids, tool_mask, completions, ...)   | (1: sampled, 0: tool tokens): the exact per-turn         |
                                                 | accounting of TRL's own tool loop (capture_generations)  |

Nothing here imports trl at import time (it takes ~45 s of CPU); :func:`advantage_hook` and
:func:`unwrapped_model` import it when called.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pte_rl.pricing.trajectory import Trajectory, Turn

logger = logging.getLogger(__name__)

CHECKED_ON = "1.16.0"
"""The TRL version every touchpoint of the table was checked on."""


# --- the trainer's text tokenizer and end-of-turn ids ---------------------------------------------------


def text_tokenizer(trainer: Any) -> Any:
    """The trainer's text tokenizer: TRL's ``_tokenizer``, else ``processing_class`` (or its ``.tokenizer``)."""
    tokenizer = getattr(trainer, "_tokenizer", None)
    if tokenizer is not None:
        return tokenizer
    processing_class = trainer.processing_class
    return getattr(processing_class, "tokenizer", processing_class)


def trainer_eos_ids(trainer: Any) -> list[int] | None:
    """The end-of-turn token ids TRL resolved (tokenizer EOS + generation config EOS), or None."""
    ids = getattr(trainer, "eos_token_ids", None)
    return list(ids) if ids else None


def reward_names(trainer: Any) -> list[str]:
    """The names of the trainer's reward functions, in the order of its reward columns."""
    return list(trainer.reward_func_names)


# --- metrics ------------------------------------------------------------------------------------------


def metric_mode(trainer: Any) -> str:
    """``"train"`` or ``"eval"``: the half of TRL's metric store a batch belongs to (TRL's own test)."""
    return "train" if getattr(trainer.model, "training", True) else "eval"


def record_metric(trainer: Any, name: str, value: float) -> None:
    """Append one batch's value to TRL's metric store: averaged over the logging step by ``GRPOTrainer.log``.

    The value is logged as it is given: the caller makes it the same on every process.
    """
    trainer._metrics[metric_mode(trainer)][name].append(float(value))


class GuardedLogMetric:
    """TRL's ``_log_metric`` for everyone but the owner of some keys: their values from others are dropped.

    TRL averages every value logged under one key in a step, so two producers of ``pte/mean`` (a
    reward function and the metrics callback, each with its own cost model) would log a blend. The
    owner writes through :attr:`owner_channel`; a reward function's ``log_metric`` is this object,
    which drops an owned key with one warning per key.
    """

    def __init__(self, owner_channel: Callable[[str, float], None], owns: Callable[[str], bool], owner: str):
        self.owner_channel, self.owns, self.owner = owner_channel, owns, owner
        self.dropped: set[str] = set()

    def __call__(self, name: str, value: float) -> None:
        if not self.owns(name):
            self.owner_channel(name, value)
            return
        if name not in self.dropped:
            self.dropped.add(name)
            logger.warning("log_metric(%r): dropped, %s is the one producer of this key", name, self.owner)


def claim_metrics(trainer: Any, owns: Callable[[str], bool], owner: str) -> Callable[[str, float], None] | None:
    """Make ``owner`` the one producer of the keys ``owns`` accepts; returns its channel (None: no TRL trainer).

    TRL hands ``trainer._log_metric`` to the reward functions as ``log_metric`` at every reward call,
    so replacing it on the instance (once; later calls return the same channel) guards every later
    batch. The returned channel is TRL's own ``_log_metric``.
    """
    current = getattr(trainer, "_log_metric", None)
    if isinstance(current, GuardedLogMetric):
        return current.owner_channel
    if not callable(current):
        return None
    trainer._log_metric = GuardedLogMetric(current, owns, owner)
    return current


def reward_metrics_channel(
    log_metric: Callable[[str, float], None], owns: Callable[[str], bool], owner: str
) -> Callable[[str, float], None] | None:
    """For a reward function: where to log the keys ``owns`` accepts, or None when another producer owns them.

    ``log_metric`` is what TRL handed the reward: ``trainer._log_metric``, a bound method (or, once
    claimed, the :class:`GuardedLogMetric` in its place). The first caller to ask claims the keys on
    that trainer (:func:`claim_metrics`) and gets TRL's channel at every later batch; every other
    producer, the metrics callback included, gets None. TRL builds the reward kwargs once per batch,
    so a second reward of the same batch still holds the bound method: the trainer's attribute decides.
    A ``log_metric`` that is not TRL's (a caller's own function) is returned as it is.
    """
    guard = log_metric if isinstance(log_metric, GuardedLogMetric) else None
    trainer = getattr(log_metric, "__self__", None)
    if guard is None and getattr(getattr(log_metric, "__func__", None), "__name__", None) == "_log_metric":
        claim_metrics(trainer, owns, owner)
        current = getattr(trainer, "_log_metric", None)
        guard = current if isinstance(current, GuardedLogMetric) else None
    if guard is None:
        return log_metric
    return guard.owner_channel if guard.owner == owner else None


# --- what TRL's own tool loop fed and got back ------------------------------------------------------------


class GenerationCapture:
    """Every batch ``GRPOTrainer._generate`` returns, as plain lists: ``batches[k]`` is a dict with
    ``prompts`` (the chat messages, as the reward functions get them), ``prompt_ids``, ``completion_ids``,
    ``tool_mask`` (None without tools) and ``completions`` (TRL's parsed messages), one entry per sample."""

    def __init__(self, generate: Callable[[list], tuple]):
        self.generate = generate
        self.batches: list[dict[str, Any]] = []

    def __call__(self, prompts: list) -> tuple:
        import copy

        given = copy.deepcopy(prompts)
        output = self.generate(prompts)
        prompt_ids, completion_ids, tool_mask, completions = output[:4]
        self.batches.append({
            "prompts": given, "prompt_ids": [list(ids) for ids in prompt_ids],
            "completion_ids": [list(ids) for ids in completion_ids],
            "tool_mask": None if tool_mask is None else [list(mask) for mask in tool_mask],
            "completions": copy.deepcopy(completions),
        })
        return output

    def trajectories(self) -> list[Trajectory]:
        """One trajectory per captured sample, every batch in order, counted from the ids (:func:`turns_from_ids`)."""
        out = []
        for batch in self.batches:
            masks = batch["tool_mask"] or [None] * len(batch["completion_ids"])
            rows = zip(batch["prompt_ids"], batch["completion_ids"], masks, strict=True)
            for prompt_ids, completion_ids, mask in rows:
                turns = turns_from_ids(len(prompt_ids), len(completion_ids), mask)
                out.append(Trajectory([Turn(context, decode, tool_tokens=tool) for context, decode, tool in turns]))
        return out


def capture_generations(trainer: Any) -> GenerationCapture:
    """Record what ``trainer`` generates from now on (its ``_generate``, wrapped on the instance; once)."""
    current = trainer._generate
    if isinstance(current, GenerationCapture):
        return current
    capture = GenerationCapture(current)
    trainer._generate = capture
    return capture


def turns_from_ids(
    prompt_length: int, completion_length: int, tool_mask: list[int] | None
) -> list[tuple[int, int, int]]:
    """``(context_tokens, decode_tokens, tool_tokens)`` of each turn of one TRL sample, from the ids themselves.

    A turn is a run of model-sampled ids (``tool_mask`` 1): its context is every id before the run
    (the prompt, earlier turns, tool results and the template's glue between them), its decode the
    run's length, its tool tokens the external ids (``tool_mask`` 0) after it. Without a mask the whole
    completion is one turn.

    >>> turns_from_ids(10, 9, [1, 1, 1, 0, 0, 0, 1, 1, 1])   # a call, 3 tool ids, the answer
    [(10, 3, 3), (16, 3, 0)]
    """
    mask = [1] * completion_length if tool_mask is None else list(tool_mask)[:completion_length]
    turns: list[list[int]] = []
    for position, bit in enumerate(mask):
        if bit and (position == 0 or not mask[position - 1]):
            turns.append([prompt_length + position, 0, 0])
        if turns:
            turns[-1][1 if bit else 2] += 1
    return [(context, decode, tool) for context, decode, tool in turns]


# --- the advantage hook (GRPOTrainer subclass) ------------------------------------------------------------


@dataclass(frozen=True)
class AdvantageBatch:
    """What an advantage adjustment may read besides the advantages (all tensors from TRL's batch).

    ``all_rewards_per_func``: TRL's gathered ``(all processes' rows, reward functions)`` matrix;
    ``rows``: this process's slice of it; ``prompt_mask`` (n, P) and ``policy_mask`` (n, T): the
    completion tokens the policy sampled (``completion_mask * tool_mask``: tool responses and template
    tokens are 0), which are the tokens the loss trains; ``reward_weights``, ``num_generations``,
    ``scale_rewards`` and ``multi_objective_aggregation``: how TRL turned the matrix into advantages.
    """

    all_rewards_per_func: Any
    rows: slice
    prompt_mask: Any
    policy_mask: Any
    reward_weights: Any
    num_generations: int
    scale_rewards: str
    multi_objective_aggregation: str


def _advantage_batch(trainer: Any, output: dict, rows: slice) -> AdvantageBatch:
    completion_mask = output.get("completion_mask")
    tool_mask = output.get("tool_mask")
    policy_mask = completion_mask if tool_mask is None or completion_mask is None else completion_mask * tool_mask
    args = trainer.args
    return AdvantageBatch(
        all_rewards_per_func=trainer._pte_rl_rewards_per_func, rows=rows, prompt_mask=output.get("prompt_mask"),
        policy_mask=policy_mask, reward_weights=getattr(trainer, "reward_weights", None),
        num_generations=int(getattr(args, "num_generations", 1) or 1),
        scale_rewards=str(getattr(args, "scale_rewards", "group")),
        multi_objective_aggregation=str(getattr(args, "multi_objective_aggregation", "sum_then_normalize")),
    )


def advantage_hook(base: type | None = None) -> type:
    """A subclass of ``base`` (TRL's ``GRPOTrainer`` by default) whose advantages pass through
    ``self.adjust_advantages(advantages, rewards_per_func, batch)`` once TRL has computed them.

    ``advantages`` are this process's rows (shape ``(n,)`` or ``(n, T)``); ``rewards_per_func`` the
    matching rows of TRL's ``(all processes' rows, reward functions)`` matrix, with NaN where a
    function returned None; ``batch`` an :class:`AdvantageBatch` (the whole matrix, so that a group
    split over processes stays whole, and the batch's masks). Subclasses override ``adjust_advantages``;
    the default returns the advantages unchanged.
    """
    if base is None:
        from trl import GRPOTrainer

        base = GRPOTrainer
    parent: Any = base

    class AdvantageHookTrainer(parent):
        _pte_rl_rewards_per_func: Any = None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._pte_rl_rewards_per_func = rewards  # gathered over processes, as TRL uses it
            return rewards

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            advantages = output["advantages"]
            start = self.accelerator.process_index * advantages.shape[0]
            rows = slice(start, start + advantages.shape[0])
            local = self._pte_rl_rewards_per_func[rows]
            output["advantages"] = self.adjust_advantages(advantages, local, _advantage_batch(self, output, rows))
            return output

        def adjust_advantages(self, advantages: Any, rewards_per_func: Any, batch: AdvantageBatch) -> Any:
            return advantages

    AdvantageHookTrainer.__qualname__ = AdvantageHookTrainer.__name__ = f"AdvantageHook{base.__name__}"
    return AdvantageHookTrainer


# --- the trainer's generation engine ----------------------------------------------------------------------


def vllm_engine(trainer: Any) -> tuple[str, Any] | None:
    """``(vllm_mode, trainer.vllm_generation)`` when the trainer generates with vLLM, else None."""
    if not getattr(trainer, "use_vllm", False):
        return None
    mode = getattr(trainer, "vllm_mode", None) or trainer.args.vllm_mode
    return mode, trainer.vllm_generation


def vllm_client(generation: Any) -> Any:
    """TRL's ``VLLMClient`` of a server-mode engine (None on processes other than the main one)."""
    return getattr(generation, "vllm_client", None)


def vllm_tensor_parallel_size(generation: Any) -> int:
    return int(getattr(generation, "tensor_parallel_size", 1) or 1)


@contextlib.contextmanager
def vllm_awake(generation: Any) -> Iterator[Any]:
    """The colocated ``vllm.LLM``, awake for the block: TRL's sleep-mode handling around its own generate.

    With ``enable_sleep_mode`` TRL puts the engine to sleep (level 2) between batches: its weights
    are synced back when they slept, its KV cache woken, and it sleeps again after the block.
    """
    if not getattr(generation, "enable_sleep_mode", False):
        yield generation.llm
        return
    if getattr(generation, "_llm_weights_sleeping", False):
        generation.sync_weights()
    generation.llm.wake_up(tags=["kv_cache"])
    try:
        yield generation.llm
    finally:
        generation.llm.sleep(level=2)
        generation._llm_weights_sleeping = True


def is_fsdp(trainer: Any) -> bool:
    return bool(getattr(trainer, "is_fsdp_enabled", False))


@contextlib.contextmanager
def unwrapped_model(trainer: Any) -> Iterator[Any]:
    """The trainer's model ready for ``model.generate`` (TRL's ``unwrap_model_for_generation``)."""
    from trl.models.utils import unwrap_model_for_generation

    with unwrap_model_for_generation(
        trainer.model_wrapped, trainer.accelerator,
        gather_deepspeed3_params=True,
        gradient_checkpointing_kwargs=getattr(trainer.args, "gradient_checkpointing_kwargs", None),
    ) as model:
        yield model

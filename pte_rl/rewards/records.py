"""Where reward functions get their trajectories, answers and costs from.

Two sources, in order:

1. **The rollout's records** (exact): pte_rl's ``rollout_func`` returns one :class:`Trajectory` per
   completion, which TRL hands to every reward function as the extra keyword ``trajectory`` (dicts from
   ``Trajectory.to_dict()``). Token counts there are the engine's own: ``context_tokens`` is the length
   of the id list fed to the engine, ``decode_tokens`` the ids it returned.
2. **A rebuild from TRL's plain completions** (approximate), when no records are passed and a
   tokenizer is given. Conversational samples (``prompt`` + ``completion`` message lists, as TRL's own
   tool loop produces) go through :func:`pte_rl.pricing.jsonl.parse_record` with a
   :class:`pte_rl.pricing.jsonl.TemplateCounter`: turn i's context is the rendering of the messages before its
   assistant message plus the generation prompt, its decode tokens what that message adds. Compared
   with the ids the engine really saw, this is
     - exact for the context of the first turn and for single-turn decode counts (taken from
       ``completion_ids``, which are the sampled ids);
     - +k decode tokens per multi-turn turn, where k is what the template writes after the model's
       end-of-turn token (1 for Qwen2.5's ``<|im_end|>\\n``); TRL's loop counts it as environment
       (tool) tokens instead, so every later context is exact;
     - off by any difference between the sampled ids and a re-tokenisation of their text
       (non-canonical BPE merges), usually 0-2 tokens per turn;
     - too low by the dropped text for templates that rewrite history (Qwen3 drops earlier turns'
       ``<think>`` blocks; the engine's context kept them) and by the tool block of the system prompt
       unless the reward function is given the same ``tools`` as the trainer;
     - unaware of prefix-cache hits (``cached_tokens`` unknown: the ``measured`` cache policy then
       prices like ``evict``).
   String (non-conversational) samples become one turn: context = the re-tokenised prompt, decode =
   ``len(completion_ids)``.

Without records and without a tokenizer, token measures fall back to ``len(completion_ids)`` (exact
for single-turn completions; in TRL's tool loop it also counts the tool tokens) and PTE cannot be
computed (a configuration error, raised).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pte_rl.pricing.cost import CostModel, pte, token_totals
from pte_rl.pricing.trajectory import Trajectory, Turn, _content_text

logger = logging.getLogger(__name__)
NAN = float("nan")

# Cost measures a reward can read.
MEASURES = ("pte", "generated_tokens", "total_tokens", "tool_calls", "completion_tokens")


def trajectories(
    prompts: Sequence[Any] | None,
    completions: Sequence[Any],
    completion_ids: Sequence[Sequence[int]] | None,
    kwargs: dict[str, Any],
    tokenizer: Any = None,
    tools: list[Any] | None = None,
) -> tuple[list[Trajectory | None], str]:
    """One trajectory per completion (``None`` where it cannot be had), and the source used.

    The source is ``"records"`` (the ``trajectory`` keyword), ``"template"`` (rebuilt with the
    tokenizer) or ``"none"``.
    """
    n = len(completions)
    records = kwargs.get("trajectory")
    if records is not None:
        if len(records) != n:
            raise ValueError(f"trajectory: expected {n} records (one per completion), got {len(records)}")
        out: list[Trajectory | None] = []
        for i, record in enumerate(records):
            if record is None or isinstance(record, Trajectory):
                out.append(record)
                continue
            try:
                out.append(Trajectory.from_dict(record))
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning(
                    "trajectory[%d]: not a Trajectory.to_dict() record (%s); sample left unscored", i, exc
                )
                out.append(None)
        return out, "records"
    if tokenizer is None:
        return [None] * n, "none"
    from pte_rl.pricing.jsonl import TemplateCounter, parse_record

    counter = TemplateCounter(tokenizer)
    out = []
    for i, completion in enumerate(completions):
        prompt = prompts[i] if prompts is not None else None
        ids = completion_ids[i] if completion_ids is not None else None
        try:
            if isinstance(completion, str):
                context = len(tokenizer(prompt or "", add_special_tokens=False)["input_ids"])
                decode = (
                    len(ids)
                    if ids is not None
                    else len(tokenizer(completion, add_special_tokens=False)["input_ids"])
                )
                out.append(
                    Trajectory(
                        turns=[Turn(context, decode)] if completion or decode else [],
                        messages=[{"role": "assistant", "content": completion}],
                    )
                )
                continue
            messages = list(prompt or []) + list(completion)
            if not any(m.get("role") == "assistant" for m in completion):
                out.append(Trajectory(turns=[], messages=messages))
                continue
            traj = parse_record({"messages": messages, "tools": tools}, counter=counter)
            if ids is not None and len(traj.turns) == 1:
                traj.turns[0].decode_tokens = len(ids)  # the sampled ids: exact
            out.append(traj)
        except Exception as exc:  # noqa: BLE001 - a bad sample is unscored (and logged), not a crashed step
            logger.warning(
                "completion %d: turns could not be rebuilt with the chat template (%s: %s); unscored",
                i,
                type(exc).__name__,
                exc,
            )
            out.append(None)
    return out, "template"


def final_text(trajectory: Trajectory | None, completion: Any) -> tuple[str, bool]:
    """The text of the last assistant message, and whether the episode is unfinished.

    Unfinished: the last assistant message still asks for tools (iteration limit or budget hit), so
    there is no final answer to grade.
    """
    if trajectory is not None and trajectory.messages:
        messages = trajectory.messages
    elif isinstance(completion, str):
        return completion, False
    else:
        messages = list(completion or [])
    assistant = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistant:
        return "", False
    last = assistant[-1]
    unfinished = bool(last.get("tool_calls"))
    if trajectory is not None and trajectory.turns and trajectory.turns[-1].tool_calls:
        unfinished = True
    return _content_text(last.get("content")), unfinished


def measure(
    trajectory: Trajectory | None,
    completion_length: float | None,
    name: str,
    cost_model: CostModel | None,
) -> float:
    """The cost ``name`` of one sample (NaN when it cannot be measured); ``completion_length`` is
    ``len(completion_ids)`` (NaN or None when not given)."""
    length = NAN if completion_length is None else float(completion_length)
    if name == "completion_tokens":
        return length
    if trajectory is None:
        return length if name == "generated_tokens" else NAN
    if name == "pte":
        if cost_model is None:
            raise ValueError("cost_model: PTE needs a cost model")
        return pte(trajectory, cost_model).total
    if name == "generated_tokens":
        return float(trajectory.decode_tokens)
    if name == "total_tokens":
        return float(token_totals(trajectory)["total_tokens"])
    if name == "tool_calls":
        return float(trajectory.num_tool_calls)
    raise ValueError(f"cost: expected one of {MEASURES}, got {name!r}")


def column(kwargs: dict[str, Any], key: str, i: int) -> Any:
    """Sample ``i`` of the column ``key`` (None when absent)."""
    values = kwargs.get(key)
    if values is None or isinstance(values, str | bytes) or not hasattr(values, "__getitem__"):
        return None
    return values[i] if i < len(values) else None

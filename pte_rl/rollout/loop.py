"""The multi-turn rollout loop: generate, parse tool calls, run tools, append results, repeat.

One loop (:func:`run_rollouts`), two drivers: TRL's ``rollout_func`` (:mod:`pte_rl.rollout.trl_driver`,
:func:`make_rollout_func`) and ``pte-rl rollout`` (:mod:`pte_rl.cli.rollout`). Per turn, for
every trajectory still running, all at once:

1. generate with the backend (:mod:`pte_rl.rollout.backends`) from ``prompt_ids + completion_ids``;
2. parse the tool calls (:func:`pte_rl.tools.parse_tool_calls`, in the harness's call syntax when one is
   given: :mod:`pte_rl.rollout.harness`); a message with nothing to answer (no call, no hard protocol
   failure) is the final answer and ends the episode;
3. run every trajectory's calls concurrently, each call with its timeout
   (:func:`pte_rl.tools.execute_calls`); failures come back as tool messages and events;
4. render only the appended suffix through the chat template (tool messages + the next generation
   prompt, the way TRL's own tool loop does), tokenise it, and append it as environment tokens.

The episode also stops at ``max_turns`` (event ``max_turns``; the last turn's calls are recorded, not
run) and at the completion budget (event ``max_tokens``): ``max_completion_length`` bounds
``completion_ids``, model *and* environment tokens over all turns, as in TRL's tool loop; a turn cut
short by it, or tool responses that would not leave room for one more generated token, end the episode.

Accounting is exact by construction: turn i's ``context_tokens`` (C_i) is the length of the token list
fed to the engine, ``decode_tokens`` (D_decode_i) the number of ids it returned, ``tool_tokens`` the
suffix appended after it, so ``C_{i+1} = C_i + D_i + tool_tokens_i``. The suffix is attributed to
each tool message by how much the rendering grows when the message is added; the generation prompt
(``<|im_start|>assistant\\n``) belongs to no call. ``env_mask`` is 1 on generated ids, 0 on the suffix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from pte_rl.pricing.trajectory import Event, ToolCall, Trajectory, Turn
from pte_rl.rollout.backends import GenerationBackend, SamplingConfig

if TYPE_CHECKING:
    from pte_rl.rollout.harness import Harness


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """Limits and sampling for one batch of episodes."""

    max_turns: int = 4
    """Assistant turns per episode (the last one's tool calls are not run)."""
    max_completion_length: int = 1024
    """Completion budget over all turns: generated plus tool/template tokens (TRL's meaning)."""
    max_tokens_per_turn: int | None = None
    """Optional cap on the tokens generated in one turn; a turn cut by it ends the episode."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    tool_timeout_s: float = 30.0
    """Wall-clock limit per tool call."""
    max_tool_workers: int = 8
    """Calls of one trajectory's turn running at once."""
    max_tool_output_chars: int | None = None
    """Cut every tool response to this many characters (None: the tools' own budgets)."""
    answer_soft_failures: bool = False
    """Answer code blocks / calls written as text with an error message instead of ending the episode."""

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns: expected >= 1, got {self.max_turns}")
        if self.max_completion_length < 1:
            raise ValueError(f"max_completion_length: expected >= 1, got {self.max_completion_length}")
        if self.max_tokens_per_turn is not None and self.max_tokens_per_turn < 1:
            raise ValueError(f"max_tokens_per_turn: expected >= 1 or None, got {self.max_tokens_per_turn}")


@dataclass(slots=True)
class RolloutResult:
    """One episode in TRL's terms plus its record."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    env_mask: list[int]
    trajectory: Trajectory


@dataclass(slots=True)
class TaskInfo:
    """What the dataset knows about a prompt: its ground truth and task id."""

    ground_truth: Any = None
    task_id: str | None = None


class ChatRenderer:
    """Prompt and suffix token ids through a tokenizer's chat template (no re-tokenising of history)."""

    def __init__(self, tokenizer: Any, tool_schemas: list[dict] | None):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template; the rollout renders tool messages through it")
        self.tokenizer = tokenizer
        self.tool_schemas = tool_schemas or None  # `or None`: some templates render tool boilerplate for []
        self.eos_token_id = getattr(tokenizer, "eos_token_id", None)

    def _ids(self, messages: list[dict], tools: list[dict] | None, generation_prompt: bool) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return self._ids(messages, self.tool_schemas, True)

    def suffix(self, tool_messages: list[dict]) -> tuple[list[int], list[int]]:
        """(suffix ids, tokens attributed to each tool message) after an assistant turn that ended in EOS."""
        dummy: list[dict[str, Any]] = [
            {"role": "user", "content": "dummy"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": tool_messages[0].get("name") or "tool", "arguments": {}}}
            ]},
        ]
        prefix = self._ids(dummy, None, False)
        eos = [i for i, t in enumerate(prefix) if t == self.eos_token_id]
        if eos:  # the model's own turn ends at EOS; what the template adds after it is the suffix's
            prefix = prefix[: eos[-1] + 1]
        full = self._ids(dummy + tool_messages, None, True)
        if full[: len(prefix)] != prefix:
            raise ValueError("the chat template does not render the conversation as a prefix of its extension")
        lengths = [len(self._ids(dummy + tool_messages[: k + 1], None, False)) - len(prefix)
                   for k in range(len(tool_messages))]
        per_message = [b - a for a, b in pairwise([0, *lengths])]
        return full[len(prefix):], [max(0, n) for n in per_message]


@dataclass(slots=True)
class _View:
    """An episode's tools (parsed in its harness's syntax), prompt renderer, checker and metadata."""

    toolset: Any
    renderer: ChatRenderer
    syntax: str | None
    check_answer: Callable[[str, Any], bool | None] | None
    metadata: dict | None

    @classmethod
    def of(cls, tokenizer: Any, tools: Any, check_answer: Any, harness: Harness | None, metadata: Any) -> _View:
        from pte_rl.tools import as_toolset

        toolset = as_toolset(tools)
        if harness is not None:
            metadata = {**(metadata or {}), "harness": harness.describe()}
        schemas = toolset.schemas if harness is None or harness.template_tools else None
        return cls(toolset, ChatRenderer(tokenizer, schemas), getattr(harness, "syntax", None), check_answer, metadata)


@dataclass
class _Episode:
    index: int
    messages: list[dict]
    prompt_ids: list[int]
    task: TaskInfo
    view: _View
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    generation_times: list[float | None] = field(default_factory=list)
    final_text: str | None = None
    stop: str | None = None  # answer | max_turns | max_tokens

    @property
    def done(self) -> bool:
        return self.stop is not None

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


def run_rollouts(
    prompts: Sequence[list[dict]],
    backend: GenerationBackend,
    tokenizer: Any,
    tools: Sequence[Callable] | Any,
    config: RolloutConfig,
    *,
    check_answer: Callable[[str, Any], bool | None] | None = None,
    tasks: Sequence[TaskInfo] | None = None,
    ids: Sequence[str] | None = None,
    metadata: dict | None = None,
    harness: Harness | None = None,
    skins: Sequence[Any] | None = None,
) -> list[RolloutResult]:
    """Run one episode per prompt (chat messages) to the end; see the module docstring.

    ``harness`` (``tools`` and prompts re-skinned by it: :func:`pte_rl.rollout.harness.reskin`) sets the call
    syntax and whether the template renders the tools; ``metadata["harness"]`` records it. ``skins`` (one per
    prompt: :class:`pte_rl.rollout.harness.Skin`) give each episode its own tools, checker and harness instead.
    """
    from pte_rl.tools import parse_tool_calls

    unique = {id(s): _View.of(tokenizer, s.tools, s.check_answer, s.harness, metadata) for s in set(skins or ())}
    views = [unique[id(s)] for s in skins] if skins is not None else [
        _View.of(tokenizer, tools, check_answer, harness, metadata)] * len(prompts)
    tasks = list(tasks) if tasks is not None else [TaskInfo() for _ in prompts]
    episodes = [_Episode(i, [dict(m) for m in p], v.renderer.prompt_ids(p), tasks[i], v)
                for i, (p, v) in enumerate(zip(prompts, views, strict=True))]
    eos_ids = getattr(backend, "eos_ids", None) or {getattr(tokenizer, "eos_token_id", None)}
    max_context = getattr(backend, "max_context", None)

    turn = 0
    while backend.any_active(any(not e.done for e in episodes)):
        active, limits = [], []
        for episode in (e for e in episodes if not e.done):
            limit = _turn_limit(episode, config, max_context)
            if limit[0] < 1:  # no room for a single token (a prompt longer than the model's context)
                _stop(episode, "max_tokens", turn, "no room left to generate in the context or the budget")
            else:
                active.append(episode)
                limits.append(limit)
        prompts_ids = [e.prompt_ids + e.completion_ids for e in active]
        generations = backend.generate(prompts_ids, [n for n, _ in limits], config.sampling)
        to_run: list[tuple[_Episode, Any]] = []
        for episode, limit, gen in zip(active, limits, generations, strict=True):
            _record_generation(episode, gen)
            ends_in_eos = gen.finished and bool(gen.token_ids) and gen.token_ids[-1] in eos_ids
            text = tokenizer.decode(gen.token_ids[:-1] if ends_in_eos else gen.token_ids, skip_special_tokens=False)
            parsed = parse_tool_calls(text, episode.view.toolset, turn=turn, syntax=episode.view.syntax)
            if _end_turn(episode, text, parsed, gen.finished, limit, config, turn):
                to_run.append((episode, parsed))
        _run_tools(to_run, config, max_context, turn)
        turn += 1
    return [
        RolloutResult(episode.prompt_ids, episode.completion_ids, episode.logprobs, episode.env_mask,
                      _trajectory(episode, ids))
        for episode in episodes
    ]


def _turn_limit(episode: _Episode, config: RolloutConfig, max_context: int | None) -> tuple[int, str]:
    """The most tokens the episode's next turn may generate, and the limit that sets it."""
    budget_left = config.max_completion_length - len(episode.completion_ids)
    limit = budget_left
    if config.max_tokens_per_turn is not None:
        limit = min(limit, config.max_tokens_per_turn)
    if max_context is not None:
        limit = min(limit, max_context - episode.length)
    what = ("completion budget" if limit == budget_left else
            "token limit of the turn" if limit == config.max_tokens_per_turn else "model's context length")
    return limit, what


def _record_generation(episode: _Episode, gen: Any) -> None:
    """A new turn: its tokens, timings and logprobs (NaN where the backend gives none)."""
    episode.turns.append(Turn(
        context_tokens=episode.length, decode_tokens=len(gen.token_ids), cached_tokens=gen.cached_tokens,
        prefill_time_s=gen.prefill_time_s, decode_time_s=gen.decode_time_s,
    ))
    episode.batch_sizes.append(gen.batch_size)
    episode.generation_times.append(gen.generation_time_s)
    episode.completion_ids += gen.token_ids
    episode.env_mask += [1] * len(gen.token_ids)
    lps = gen.logprobs if gen.logprobs is not None else [math.nan] * len(gen.token_ids)
    if len(lps) != len(gen.token_ids):
        raise RuntimeError(f"backend returned {len(lps)} logprobs for {len(gen.token_ids)} tokens")
    episode.logprobs += [float(x) for x in lps]


def _end_turn(
    episode: _Episode, text: str, parsed: Any, finished: bool, limit: tuple[int, str], config: RolloutConfig,
    turn: int,
) -> bool:
    """Append the assistant message and decide: True when the turn's calls are to run, else the episode
    stops (a final answer, the turn cut by a limit, or calls in the last allowed turn)."""
    episode.events += parsed.events
    attempts = [a for a in parsed.attempts if config.answer_soft_failures or not _is_soft(a)]
    needs_response = parsed.needs_response or bool(attempts)
    episode.messages.append(_assistant_message(text, attempts if needs_response else []))
    if not finished:
        _unrun(episode, attempts, "max_tokens")
        _stop(episode, "max_tokens", turn, f"the turn hit the {limit[1]} ({limit[0]} tokens) before ending")
    elif not needs_response:
        episode.final_text = text
        episode.stop = "answer"
    elif turn + 1 >= config.max_turns:
        _unrun(episode, attempts, "max_turns")
        _stop(episode, "max_turns", turn, f"tool calls in the last turn allowed (max_turns={config.max_turns})")
    else:
        return True
    return False


def _run_tools(to_run: list[tuple[_Episode, Any]], config: RolloutConfig, max_context: int | None, turn: int) -> None:
    """Every trajectory's calls at once (a slow tool delays its turn, not the batch's sum), then their results."""
    from pte_rl.tools import execute_calls

    def execute(item: tuple[_Episode, Any]) -> list:
        return execute_calls(
            item[1], item[0].view.toolset, timeout_s=config.tool_timeout_s, max_workers=config.max_tool_workers,
            max_output_chars=config.max_tool_output_chars, include_soft_errors=config.answer_soft_failures,
        )

    if not to_run:
        return
    with ThreadPoolExecutor(max_workers=min(64, len(to_run))) as pool:
        outcomes_per_episode = list(pool.map(execute, to_run))
    for (episode, _), outcomes in zip(to_run, outcomes_per_episode, strict=True):
        _append_tool_results(episode, outcomes, config, max_context, turn)


def _stop(episode: _Episode, kind: str, turn: int, detail: str) -> None:
    episode.stop = kind
    episode.events.append(Event(turn=turn, kind=kind, detail=detail))


def _is_soft(attempt: Any) -> bool:
    return bool(getattr(attempt, "soft", False))


def _unrun(episode: _Episode, attempts: list, reason: str) -> None:
    """Record a turn's call attempts that the loop did not run (the episode stops here)."""
    for attempt in attempts:
        arguments = getattr(attempt, "arguments", None)
        episode.turns[-1].tool_calls.append(ToolCall(
            name=attempt.name or "invalid", arguments=attempt.raw if arguments is None else arguments,
            error=getattr(attempt, "kind", None) or reason, call_id=attempt.id,
        ))


def _assistant_message(text: str, attempts: list) -> dict:
    """The OpenAI-style assistant message: the text outside the calls, and the calls in OpenAI form.

    Failed attempts that get a tool message appear as calls too (name ``invalid`` when unknown, the
    raw text as arguments), so every tool message has its ``tool_call_id``.
    """
    if not attempts:
        return {"role": "assistant", "content": text}
    content, calls = text, []
    for attempt in attempts:
        arguments = getattr(attempt, "arguments", None)
        if attempt.raw and attempt.raw in content and not _is_soft(attempt):
            content = content.replace(attempt.raw, "", 1)
        calls.append({"id": attempt.id, "type": "function", "function": {
            "name": attempt.name or "invalid",
            "arguments": attempt.raw if arguments is None else json.dumps(arguments, ensure_ascii=False),
        }})
    return {"role": "assistant", "content": content.strip(), "tool_calls": calls}


def _append_tool_results(episode: _Episode, outcomes: list, config: RolloutConfig, max_context: int | None,
                         turn: int) -> None:
    tool_messages = [{**o.message(), "name": o.name or "invalid"} for o in outcomes]
    for outcome in outcomes:
        episode.events += outcome.events
    suffix, per_message = episode.view.renderer.suffix(tool_messages) if tool_messages else ([], [])
    room = config.max_completion_length - len(episode.completion_ids) - len(suffix)
    if max_context is not None:
        room = min(room, max_context - episode.length - len(suffix))
    if room < 1:  # as TRL does: results that leave no room to generate are not appended
        episode.turns[-1].tool_calls += [_tool_call(o, 0) for o in outcomes]
        _stop(episode, "max_tokens", turn, f"tool responses ({len(suffix)} tokens) leave no room in the budget")
        return
    episode.turns[-1].tool_calls += [_tool_call(o, n) for o, n in zip(outcomes, per_message, strict=True)]
    episode.turns[-1].tool_tokens = len(suffix)
    episode.completion_ids += suffix
    episode.env_mask += [0] * len(suffix)
    episode.logprobs += [0.0] * len(suffix)
    episode.messages += tool_messages


def _tool_call(outcome: Any, response_tokens: int) -> ToolCall:
    call = outcome.to_tool_call(response_tokens)
    call.name = call.name or "invalid"  # a call whose JSON did not parse has no name
    return call


def _trajectory(episode: _Episode, ids: Sequence[str] | None) -> Trajectory:
    from pte_rl.checkers import extract_answer

    task, check_answer, metadata = episode.task, episode.view.check_answer, episode.view.metadata
    answer, correct = None, None
    if episode.final_text is not None:
        answer = extract_answer(episode.final_text)[0]
        if check_answer is not None and task.ground_truth is not None:
            verdict = check_answer(episode.final_text, task.ground_truth)
            correct = None if verdict is None else bool(verdict)
    elif task.ground_truth is not None:
        correct = False  # unfinished: stopped at max_turns or the budget without a final answer
    return Trajectory(
        turns=episode.turns,
        id=ids[episode.index] if ids is not None else None,
        task_id=task.task_id, answer=answer, ground_truth=task.ground_truth, correct=correct,
        messages=episode.messages, tools=episode.view.toolset.schemas, events=episode.events,
        metadata={
            **(metadata or {}), "stop": episode.stop, "prompt_tokens": len(episode.prompt_ids),
            "batch_sizes": episode.batch_sizes, "generation_time_s": episode.generation_times,
        },
    )


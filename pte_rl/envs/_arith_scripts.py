"""The scripted behaviours of `arith` (see :mod:`pte_rl.envs.arith`): the warm-start chats of the tiny
policy, and :func:`classify_behaviour`, which labels what a policy did."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence

from pte_rl.envs import arith

BEHAVIOURS = ("direct", "call", "confirm", "repeat", "verbose")
EFFICIENT = {"direct", "call"}  # direct for level 1, call for levels >= 2
# The warm start's mixture: ~78% of the scripted trajectories are wasteful (direct is renormalised
# away on items that need a tool).
DEFAULT_MIX = {"direct": 0.25, "call": 0.15, "confirm": 0.15, "repeat": 0.15, "verbose": 0.30}
VERIFY_SENTENCE = "Let me verify."



def _call(name: str, arguments: dict, index: int) -> dict:
    return {"id": f"call_{index}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def _exchange(name: str, argument: str, index: int, tool_fn, text: str = "") -> list[dict]:
    key = "expression" if name == "calculator" else "code"
    call = _call(name, {key: argument}, index)
    return [
        {"role": "assistant", "content": text, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "name": name, "content": tool_fn(argument)},
    ]


def script(problem: arith.Problem, behaviour: str, *, report_lines: int = arith.DEFAULT_REPORT_LINES) -> list[dict]:
    """The chat (OpenAI-style messages, tool-call arguments as JSON strings) of one behaviour."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"behaviour: expected one of {BEHAVIOURS}, got {behaviour!r}")
    if behaviour == "direct" and problem.needs_tool:
        raise ValueError(f"behaviour 'direct' is not scripted for level {problem.level} items (they need a tool)")
    expr, answer = problem.expression, str(problem.value)
    final = {"role": "assistant", "content": f"\\boxed{{{answer}}}"}
    stated = f"The answer is {answer}. {VERIFY_SENTENCE}"
    turns: list[dict] = []
    if behaviour == "call":
        turns = _exchange("calculator", expr, 0, arith.calculator)
    elif behaviour == "confirm" and not problem.needs_tool:
        turns = _exchange("calculator", expr, 0, arith.calculator, text=stated)
    elif behaviour == "confirm":
        first = _exchange("calculator", expr, 0, arith.calculator)
        turns = first + _exchange("calculator", expr, 1, arith.calculator, stated)
    elif behaviour == "repeat":
        turns = _exchange("calculator", expr, 0, arith.calculator) + _exchange("calculator", expr, 1, arith.calculator)
    elif behaviour == "verbose":
        turns = _exchange("python", expr, 0, arith.make_python_tool(report_lines))
    return arith.prompt_messages(problem) + turns + [final]


def _mix(mix: Mapping[str, float] | None) -> dict[str, float]:
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(mix) - set(BEHAVIOURS)
    if unknown or any(float(w) < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(
            f"mix: expected non-negative weights over {BEHAVIOURS} with a positive sum, got {mix!r}"
            + (f" (unknown: {sorted(unknown)})" if unknown else "")
        )
    return {b: float(mix.get(b, 0.0)) for b in BEHAVIOURS}


def scripted_trajectories(
    seed: int,
    n: int,
    mix: Mapping[str, float] | None = None,
    *,
    level_weights: Sequence[float] = arith.SCRIPTED_LEVEL_WEIGHTS,
    eval_fraction: float = 0.2,
    report_lines: int = arith.DEFAULT_REPORT_LINES,
) -> list[dict]:
    """``n`` labelled chats on training-part items, behaviours drawn from ``mix`` (renormalised
    per item over the behaviours it allows: no ``direct`` for items that need a tool), items drawn
    with ``level_weights`` (default :data:`arith.SCRIPTED_LEVEL_WEIGHTS`, more hard items than the task).

    Each record: ``{"messages", "behaviour", "task_id", "level", "ground_truth"}``. Items may repeat
    (the warm start sees an item under several behaviours); none comes from the held-out part.
    """
    weights = _mix(mix)
    rng = random.Random(f"arith/scripted/{seed}")
    pool = arith.sample_problems(
        seed, max(n, 1), split="train", level_weights=level_weights, eval_fraction=eval_fraction
    )
    records = []
    for index in range(n):
        problem = pool[index % len(pool)]
        allowed = [b for b in BEHAVIOURS if weights[b] > 0 and not (b == "direct" and problem.needs_tool)]
        if not allowed:
            raise ValueError(f"mix {weights} allows no behaviour for level {problem.level} items")
        behaviour = rng.choices(allowed, [weights[b] for b in allowed])[0]
        records.append(
            {
                "messages": script(problem, behaviour, report_lines=report_lines),
                "behaviour": behaviour,
                "task_id": problem.task_id,
                "level": problem.level,
                "ground_truth": str(problem.value),
            }
        )
    return records


def classify_behaviour(messages: Sequence[dict]) -> str:
    """Which scripted behaviour a chat follows (``other`` when none): from the assistant turns'
    tool calls and text. Works on sampled trajectories as well as on :func:`script` output."""
    turns = [m for m in messages if m.get("role") == "assistant"]
    calls = [(c.get("function", c).get("name"), _args(c)) for t in turns for c in (t.get("tool_calls") or [])]
    texted_calls = [t for t in turns if t.get("tool_calls") and (t.get("content") or "").strip()]
    if not calls:
        return "direct" if len(turns) == 1 else "other"
    if any(len(t.get("tool_calls") or []) > 1 for t in turns):
        return "other"
    names = {name for name, _ in calls}
    if names == {"python"} and len(calls) == 1 and not texted_calls:
        return "verbose"
    if names != {"calculator"} or len({json.dumps(a, sort_keys=True) for _, a in calls}) != 1:
        return "other"
    if len(calls) == 1:
        return "confirm" if texted_calls else "call"
    if len(calls) == 2:
        return "confirm" if texted_calls == [turns[1]] else ("repeat" if not texted_calls else "other")
    return "other"


def _args(call: dict):
    raw = call.get("function", call).get("arguments")
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw

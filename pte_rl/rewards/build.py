"""From a preset's data to reward functions, and the checks on the whole preset.

Each entry's ``function`` is resolved by :mod:`pte_rl.rewards.registry` (a built-in short name or a
dotted path); a reward function is used as it is, a class or factory is called with the entry's
``options`` and the context keys its signature names.

The ordering check: each reward with a ``bounds()`` method reports the range of its output for
correct and for incorrect rollouts; with weights ``w_k`` the preset passes when

    margin = sum_k w_k * low_correct_k - sum_k w_k * high_incorrect_k > 0

For the ``pte`` preset (correctness at weight 1, penalty in [-1, 0] at weight w, 0 for incorrect
rollouts) that is exactly ``w < 1``. A reward without ``bounds()`` (a plain function of the user's own)
cannot be certified: it is listed as ``unbounded`` in the resolved config and left out of the margin.
``ordering: free`` skips the check (the resolved config records the margin).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pte_rl.pricing.cost import CostModel
from pte_rl.rewards.overrides import ENTRY_KEYS, TOP_KEYS
from pte_rl.rewards.preset import Preset
from pte_rl.rewards.registry import accepted_options, is_reward_function, resolve_function

if TYPE_CHECKING:
    from pte_rl.rewards.errors import PresetError

CONTEXT_KEYS = ("cost_model", "checker", "tokenizer", "tools")
PRICING_KEYS = ("gamma", "cache", "attention", "delta", "cost_model")
PRICING = (
    "pricing is not a reward option: it is set once, in the recipe config's pricing.{key} (or pass "
    "cost_model= to load_preset), and shared by the rewards, the metrics and the evaluation"
)


@dataclass
class Entry:
    """One built reward: its preset name, what ``function`` said, and what it resolved to."""

    name: str
    function: str
    weight: float
    func: Callable[..., Any]
    options: dict[str, Any]


def build_rewards(
    preset: Preset, context: dict[str, Any]
) -> tuple[list[Callable[..., Any]], list[float], list[Entry]]:
    """The preset's reward functions and weights, in file order."""
    data = preset.data
    unknown = set(data) - set(TOP_KEYS)
    if unknown:
        raise preset.error([min(unknown)], f"unknown key; expected {TOP_KEYS}")
    if data.get("ordering", "strict") not in ("strict", "free"):
        raise preset.error(["ordering"], f"expected 'strict' or 'free', got {data['ordering']!r}")
    rewards = data.get("rewards")
    if not isinstance(rewards, dict) or not rewards:
        raise preset.error(["rewards"], "expected a non-empty mapping of reward name -> {function, weight, options}")
    entries = [build_entry(preset, str(name), entry, context) for name, entry in rewards.items()]
    return [e.func for e in entries], [e.weight for e in entries], entries


def build_entry(preset: Preset, name: str, entry: Any, context: dict[str, Any]) -> Entry:
    """One entry ``{function, weight, options}`` -> a reward function."""
    where = ["rewards", name]
    if not isinstance(entry, dict):
        raise preset.error(where, "expected a mapping with function, weight, options")
    extra = set(entry) - set(ENTRY_KEYS)
    if extra:
        raise preset.error([*where, min(extra)], f"unknown key; expected {ENTRY_KEYS}")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
        raise preset.error([*where, "weight"], f"expected a non-negative number, got {weight!r}")
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise preset.error([*where, "options"], f"expected a mapping, got {options!r}")
    for key in options:
        if key in PRICING_KEYS:
            raise preset.error([*where, "options", str(key)], PRICING.format(key=key))
    function = entry.get("function")
    try:
        target = resolve_function(function)  # type: ignore[arg-type]  # checked there
    except LookupError as exc:
        raise preset.error([*where, "function"], str(exc)) from exc
    if is_reward_function(target):
        if options:
            raise preset.error(
                [*where, "options"],
                f"{function!r} is a reward function in TRL's contract, used as it is: it takes no options "
                "(name a class or a factory to configure one)",
            )
        func = target
    else:
        func = _call_factory(preset, where, str(function), target, options, context)
    if not isinstance(getattr(func, "__name__", None), str) or not callable(func):
        raise preset.error([*where, "function"], f"{function!r} gave {func!r}: expected a callable with a __name__")
    config = getattr(func, "config", None)
    resolved = config() if callable(config) else dict(options)
    return Entry(name, str(function), float(weight), func, resolved)


def _call_factory(
    preset: Preset,
    where: list[str],
    function: str,
    factory: Callable[..., Any],
    options: dict[str, Any],
    context: dict[str, Any],
) -> Callable[..., Any]:
    accepted = accepted_options(factory)
    for key in options:
        if accepted is not None and key not in accepted:
            raise preset.error(
                [*where, "options", str(key)], f"unknown option for {function!r}; expected one of {sorted(accepted)}"
            )
    kwargs = dict(options)
    for key in CONTEXT_KEYS:
        if accepted is not None and key in accepted and kwargs.get(key) is None and context.get(key) is not None:
            kwargs[key] = context[key]
        if key in kwargs and kwargs[key] is None:
            del kwargs[key]  # null in YAML: the factory's own default (or its error if required)
    try:
        built: Callable[..., Any] = factory(**kwargs)
    except (TypeError, ValueError, ImportError) as exc:
        raise _factory_error(preset, where, function, exc, accepted) from exc
    return built


def _factory_error(
    preset: Preset, where: list[str], function: str, exc: Exception, accepted: set[str] | None
) -> PresetError:
    named = re.match(r"(\w+):", str(exc))  # the rewards say "<option>: expected ..."
    option = named.group(1) if named else None
    if option == "cost_model":
        return preset.error(where, f"{function}: {exc}; pass cost_model= to load_preset")
    if option is not None and (accepted is None or option in accepted):
        return preset.error([*where, "options", option], f"{function}: {exc}")
    return preset.error([*where, "options"], f"{function}: {exc}")


def bounds_of(func: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """``func.bounds()`` when it has one, else None (unbounded)."""
    bounds = getattr(func, "bounds", None)
    return bounds() if callable(bounds) else None


def ordering_margin(funcs: Sequence[Any], weights: Sequence[float]) -> float:
    """``min reward of a correct rollout - max reward of an incorrect one`` over the weighted sum of the
    rewards that declare bounds."""
    pairs = [(bounds_of(f), w) for f, w in zip(funcs, weights, strict=True) if w]
    low_correct = sum(w * b[0][0] for b, w in pairs if b is not None)
    high_incorrect = sum(w * b[1][1] for b, w in pairs if b is not None)
    return float(low_correct - high_incorrect)


def check_preset(preset: Preset, funcs: list[Callable[..., Any]], weights: list[float], entries: list[Entry]) -> float:
    """Distinct log keys, and the ordering guarantee unless ``ordering: free``. Returns the margin."""
    names = [f.__name__ for f in funcs]
    for name in names:
        if names.count(name) > 1:
            raise preset.error(["rewards"], f"two reward functions log as {name!r}; give one options.name")
    margin = ordering_margin(funcs, weights)
    if preset.data.get("ordering", "strict") == "strict" and not margin > 0:
        detail = ", ".join(
            f"{e.name}: weight {e.weight:g}, "
            + (f"correct {b[0]}, incorrect {b[1]}" if (b := bounds_of(e.func)) is not None else "unbounded")
            for e in entries
        )
        raise preset.error(
            ["ordering"],
            f"with these weights an incorrect rollout can score as high as a correct one "
            f"(margin {margin:g} <= 0; {detail}); lower the penalty weights (w < 1 for "
            f"a [0, 1] penalty) or set ordering: free to opt out",
        )
    return margin


def resolved_config(
    preset: Preset, entries: list[Entry], margin: float, cost_model: CostModel | None
) -> dict[str, Any]:
    """The preset after overrides, every option filled in: plain data, saved with the run."""
    rewards: dict[str, Any] = {}
    for e in entries:
        b = bounds_of(e.func)
        rewards[e.name] = {
            "function": e.function,
            "weight": e.weight,
            "log_key": e.func.__name__,
            "options": e.options,
            "bounds": "unbounded" if b is None else {"correct": list(b[0]), "incorrect": list(b[1])},
        }
    return {
        "preset": Path(preset.source).stem,
        "source": preset.source,
        "description": preset.data.get("description", ""),
        "ordering": preset.data.get("ordering", "strict"),
        "ordering_margin": margin,
        "aggregation": "sum_then_normalize",
        "overrides": [raw for _, _, raw in preset.applied],
        "cost_model": None if cost_model is None else dataclasses.asdict(cost_model),
        "rewards": rewards,
    }

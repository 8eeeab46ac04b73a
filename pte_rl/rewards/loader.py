"""Reward presets: YAML files in the repository's ``rewards/`` directory, loaded by name or path.

A preset lists reward functions with their TRL weights and options::

    description: Correctness minus a success-gated, group-normalised PTE penalty.
    ordering: strict            # strict (default): every correct rollout must outrank every incorrect one
    rewards:
      correctness: {function: correctness, weight: 1.0}
      pte:
        function: pte
        weight: 0.5             # w in r = c - w * g * penalty
        options: {method: group_success_minmax, gate: correct, gamma: null}

Lookup of a name: a path to a ``.yaml``/``.yml`` file; else ``<dir>/<name>.yaml`` for each directory
in ``$PTE_RL_REWARDS_DIR`` (``os.pathsep``-separated); else the built-in ``pte_rl/rewards/presets/<name>.yaml``.

Overrides, applied in order, as ``"key=value"`` strings (values parsed as YAML) or a dict:
``pte.weight=0.5``, ``pte.options.method=budget``, ``pte.options.budget=ema``, ``ordering=free``;
a path that does not start with ``description``/``ordering``/``rewards`` is under ``rewards``. A new
entry is created by setting its function first (``kimi.function=kimi_length``).

Values left ``null`` (or absent) for ``gamma``, ``checker``, ``tokenizer`` and ``tools`` are filled
from :func:`load_preset`'s keyword arguments (the recipe passes gamma from ``pte_rl.pricing.gamma`` and the
environment's checker).

The ordering check: each function reports the range of its output for correct and for incorrect
rollouts; with weights ``w_k`` the preset passes when
``sum_k w_k * low_correct_k > sum_k w_k * high_incorrect_k``. For the ``pte`` preset (correctness at
weight 1, penalty in [-1, 0] at weight w, 0 for incorrect rollouts) that is exactly ``w < 1``.
``ordering: free`` skips the check (the resolved config records the margin).
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pte_rl.errors import InputError
from pte_rl.pricing.cost import CostModel
from pte_rl.paths import available, search_dirs

from pte_rl.rewards.baselines import (
    dapo_overlong_reward,
    kimi_length_reward,
    linear_call_penalty,
    linear_token_penalty,
    otc_tool_reward,
)
from pte_rl.rewards.functions import correctness_reward, cost_penalty, pte_reward

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "correctness": correctness_reward,
    "pte": pte_reward,
    "cost_penalty": cost_penalty,
    "kimi_length": kimi_length_reward,
    "dapo_overlong": dapo_overlong_reward,
    "otc_tool": otc_tool_reward,
    "linear_token_penalty": linear_token_penalty,
    "linear_call_penalty": linear_call_penalty,
}
TOP_KEYS = ("description", "ordering", "rewards")
ENTRY_KEYS = ("function", "weight", "options")
CONTEXT_KEYS = ("cost_model", "checker", "tokenizer", "tools")
PRICING_KEYS = ("gamma", "cache", "attention", "delta", "cost_model")
REWARDS_DIR_VARIABLE = "PTE_RL_REWARDS_DIR"
PRICING_MESSAGE = (
    "pricing is not a reward option: it is set once, in the recipe config's pricing.{key} (or pass "
    "cost_model= to load_preset), and shared by the rewards, the metrics and the evaluation"
)


class PresetError(InputError):
    """A bad preset or override: names the file (and line), the field, and what was expected."""

    def __init__(self, source: str, field: str, expected: str, line: int | None = None):
        self.source, self.field, self.expected, self.line = source, field, expected, line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: field '{field}': {expected}")


BUILTIN_PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def _search_dirs() -> list[Path]:
    return search_dirs(REWARDS_DIR_VARIABLE, BUILTIN_PRESETS_DIR)


def available_presets() -> dict[str, Path]:
    """Preset names -> files, over ``$PTE_RL_REWARDS_DIR`` then the built-in presets."""
    return available(REWARDS_DIR_VARIABLE, BUILTIN_PRESETS_DIR, ".yaml")


def resolve_preset(name_or_path: str | os.PathLike) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise PresetError(text, "<file>", "no such preset file")
        return path
    for directory in _search_dirs():
        path = directory / f"{text}.yaml"
        if path.is_file():
            return path
    raise PresetError(
        text,
        "<name>",
        f"no preset of that name; available: {sorted(available_presets())} "
        f"(searched {[str(d) for d in _search_dirs()]})",
    )


def _line(text: str, field: Sequence[str]) -> int | None:
    """1-based line of the deepest node of ``field`` found in the YAML text."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in field:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(
            ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None
        )
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


def _apply_override(data: dict, key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise PresetError(source, key, "expected a dotted path such as pte.weight or pte.options.method")
    if parts[0] not in TOP_KEYS:
        parts = ["rewards", *parts]
    if parts[0] != "rewards":
        if len(parts) != 1:
            raise PresetError(source, key, f"'{parts[0]}' takes a single value")
        data[parts[0]] = value
        return
    rewards = data.setdefault("rewards", {})
    if len(parts) < 3:
        raise PresetError(
            source, key, "expected <reward>.function, <reward>.weight or <reward>.options.<name>"
        )
    name, field = parts[1], parts[2]
    if name not in rewards:
        if field != "function":
            raise PresetError(
                source,
                key,
                f"no reward named {name!r} (have: {sorted(rewards)}); create one by "
                f"setting {name}.function first",
            )
        rewards[name] = {}
    entry = rewards[name]
    if not isinstance(entry, dict):
        raise PresetError(source, key, f"rewards.{name} is not a mapping")
    if field not in ENTRY_KEYS:
        raise PresetError(source, key, f"expected one of {ENTRY_KEYS} under a reward, got {field!r}")
    if field == "options":
        if len(parts) < 4:
            raise PresetError(source, key, "expected <reward>.options.<name>=<value>")
        target = entry.setdefault("options", {}) or {}
        entry["options"] = target
        for part in parts[3:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise PresetError(source, key, f"{part!r} is not a mapping")
        target[parts[-1]] = value
    elif len(parts) != 3:
        raise PresetError(source, key, f"{field} takes a single value")
    else:
        entry[field] = value


def _overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[tuple[str, Any, str]]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k), v, f"{k}={v}") for k, v in overrides.items()]
    if isinstance(overrides, str):
        overrides = [overrides]
    out = []
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise PresetError(f"override {item!r}", str(item), "expected key=value, e.g. pte.weight=0.5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise PresetError(f"override {item!r}", key.strip(), f"value is not valid YAML ({exc})") from exc
        out.append((key.strip(), value, item))
    return out


def load_preset(
    name_or_path: str | os.PathLike,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    cost_model: CostModel | None = None,
    checker: Callable | str | None = None,
    tokenizer: Any = None,
    tools: list | None = None,
) -> tuple[list[Callable], list[float], dict[str, Any]]:
    """Build a preset's reward functions: ``(reward_funcs, reward_weights, resolved)``.

    ``reward_funcs`` and ``reward_weights`` go to ``GRPOTrainer(reward_funcs=...)`` and
    ``GRPOConfig.reward_weights``; ``resolved`` (plain data) is the preset after overrides with every
    option filled in, to save with the run. Raises :class:`PresetError` naming the file, line and field.
    """
    path = resolve_preset(name_or_path)
    source = str(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PresetError(
            source,
            "<yaml>",
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            mark.line + 1 if mark else None,
        ) from exc
    if not isinstance(data, dict):
        raise PresetError(
            source, "<top>", "expected a mapping with 'rewards' (and optional description, ordering)"
        )
    applied = _overrides(overrides)
    overridden: dict[str, str] = {}
    for key, value, raw in applied:
        _apply_override(data, key, value, f"override {raw!r}")
        overridden[key if key.split(".")[0] in TOP_KEYS else f"rewards.{key}"] = raw

    def fail(field: Sequence[str], expected: str) -> PresetError:
        dotted = ".".join(field)
        by = next(
            (
                raw
                for path, raw in overridden.items()
                if path == dotted or path.startswith(dotted + ".") or dotted.startswith(path + ".")
            ),
            None,
        )
        if by is not None:
            return PresetError(f"{source} (override {by!r})", dotted, expected)
        if applied:
            expected += f" (overrides applied: {[raw for _, _, raw in applied]})"
        return PresetError(source, dotted, expected, _line(text, field))

    unknown = set(data) - set(TOP_KEYS)
    if unknown:
        raise fail([min(unknown)], f"unknown key; expected {TOP_KEYS}")
    ordering = data.get("ordering", "strict")
    if ordering not in ("strict", "free"):
        raise fail(["ordering"], f"expected 'strict' or 'free', got {ordering!r}")
    rewards = data.get("rewards")
    if not isinstance(rewards, dict) or not rewards:
        raise fail(["rewards"], "expected a non-empty mapping of reward name -> {function, weight, options}")

    funcs, weights, resolved_rewards = [], [], {}
    context = {"cost_model": cost_model, "checker": checker, "tokenizer": tokenizer, "tools": tools}
    for name, entry in rewards.items():
        where = ["rewards", str(name)]
        if not isinstance(entry, dict):
            raise fail(where, "expected a mapping with function, weight, options")
        extra = set(entry) - set(ENTRY_KEYS)
        if extra:
            raise fail([*where, min(extra)], f"unknown key; expected {ENTRY_KEYS}")
        function = entry.get("function")
        if function not in FUNCTIONS:
            raise fail([*where, "function"], f"expected one of {sorted(FUNCTIONS)}, got {function!r}")
        weight = entry.get("weight", 1.0)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise fail([*where, "weight"], f"expected a non-negative number, got {weight!r}")
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise fail([*where, "options"], f"expected a mapping, got {options!r}")
        for key in options:
            if key in PRICING_KEYS:
                raise fail([*where, "options", str(key)], PRICING_MESSAGE.format(key=key))
        factory = FUNCTIONS[function]
        accepted = inspect.signature(factory).parameters
        for key in options:
            if key not in accepted:
                raise fail(
                    [*where, "options", str(key)],
                    f"unknown option for {function!r}; expected one of {sorted(accepted)}",
                )
        kwargs = dict(options)
        for key in CONTEXT_KEYS:
            if key in accepted and kwargs.get(key) is None and context[key] is not None:
                kwargs[key] = context[key]
        for key in CONTEXT_KEYS:
            if kwargs.get(key, 0) is None:
                del kwargs[key]  # null in YAML: the factory's own default (or its error if required)
        try:
            func = factory(**kwargs)
        except (TypeError, ValueError, ImportError) as exc:
            named = re.match(r"(\w+):", str(exc))  # factories say "<option>: expected ..."
            if named and named.group(1) == "cost_model":
                raise fail(where, f"{function}: {exc}; pass cost_model= to load_preset") from exc
            field = (
                [*where, "options", named.group(1)]
                if named and named.group(1) in accepted
                else [*where, "options"]
            )
            raise fail(field, f"{function}: {exc}") from exc
        funcs.append(func)
        weights.append(float(weight))
        resolved_rewards[str(name)] = {
            "function": function,
            "weight": float(weight),
            "log_key": func.__name__,
            "options": func.config(),
        }

    names = [f.__name__ for f in funcs]
    for name in names:
        if names.count(name) > 1:
            raise fail(["rewards"], f"two reward functions log as {name!r}; give one options.name")
    margin = ordering_margin(funcs, weights)
    if ordering == "strict" and not margin > 0:
        detail = ", ".join(
            f"{n}: weight {w:g}, correct {f.bounds()[0]}, incorrect {f.bounds()[1]}"
            for n, w, f in zip(rewards, weights, funcs)
        )
        raise fail(
            ["ordering"],
            f"with these weights an incorrect rollout can score as high as a correct one "
            f"(margin {margin:g} <= 0; {detail}); lower the penalty weights (w < 1 for "
            f"a [0, 1] penalty) or set ordering: free to opt out",
        )
    resolved = {
        "preset": Path(source).stem,
        "source": source,
        "description": data.get("description", ""),
        "ordering": ordering,
        "ordering_margin": margin,
        "aggregation": "sum_then_normalize",
        "overrides": [raw for _, _, raw in applied],
        "rewards": resolved_rewards,
    }
    return funcs, weights, resolved


def ordering_margin(funcs: Sequence[Any], weights: Sequence[float]) -> float:
    """``min reward of a correct rollout - max reward of an incorrect one`` over the weighted sum."""
    low_correct = sum(w * f.bounds()[0][0] for f, w in zip(funcs, weights) if w)
    high_incorrect = sum(w * f.bounds()[1][1] for f, w in zip(funcs, weights) if w)
    return low_correct - high_incorrect

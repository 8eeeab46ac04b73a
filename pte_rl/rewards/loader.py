"""Reward presets: YAML files of reward functions with their TRL weights, loaded by name or path.

    description: Correctness minus a success-gated, group-normalised PTE penalty.
    ordering: strict            # strict (default): every correct rollout must outrank every incorrect one
    rewards:
      correctness: {function: correctness, weight: 1.0}
      pte:
        function: pte           # a built-in short name, or a dotted path: my_pkg.rewards:my_reward
        weight: 0.5             # w in r = c - w * g * penalty
        options: {method: group_success_minmax, gate: correct}

Lookup of a name: a path to a ``.yaml``/``.yml`` file; else ``<dir>/<name>.yaml`` for each directory
in ``$PTE_RL_REWARDS_DIR`` (``os.pathsep``-separated); else the built-in ``pte_rl/rewards/presets/<name>.yaml``.

Overrides, applied in order, as ``"key=value"`` strings (values parsed as YAML) or a mapping (the
recipe config's ``reward.overrides``): ``pte.weight=0.5``, ``pte.options.method=budget``,
``ordering=free``; a path that does not start with ``description``/``ordering``/``rewards`` is under
``rewards``. A new entry is created by setting its function first (``kimi.function=kimi_length``).

Context: ``checker``, ``tokenizer``, ``tools`` left ``null`` (or absent) and ``cost_model`` are filled
from :func:`load_preset`'s keyword arguments for every function whose signature names them. Pricing
(``gamma``, ``cache``, ``attention``, ``delta``) is not a preset option: the recipe resolves one
:class:`pte_rl.pricing.cost.CostModel` from its config's ``pricing:`` section and hands the same one to
the rewards, the metrics callback and the evaluation; a preset that sets one is an error.

The ordering check (:mod:`pte_rl.rewards.build`) and what ``function:`` may name
(:mod:`pte_rl.rewards.registry`) are documented there. Every error is a :class:`PresetError` naming the
file, line and field (or the override that set it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pte_rl.paths import available, search_dirs
from pte_rl.pricing.cost import CostModel
from pte_rl.rewards.build import build_rewards, check_preset, resolved_config
from pte_rl.rewards.errors import PresetError
from pte_rl.rewards.overrides import apply_override, parse_overrides
from pte_rl.rewards.preset import Preset

REWARDS_DIR_VARIABLE = "PTE_RL_REWARDS_DIR"
BUILTIN_PRESETS_DIR = Path(__file__).resolve().parent / "presets"
__all__ = ["BUILTIN_PRESETS_DIR", "Preset", "PresetError", "available_presets", "load_preset", "resolve_preset"]


def load_preset(
    name_or_path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    cost_model: CostModel | None = None,
    checker: Callable[..., Any] | str | None = None,
    tokenizer: Any = None,
    tools: list[Any] | None = None,
) -> tuple[list[Callable[..., Any]], list[float], dict[str, Any]]:
    """Build a preset's reward functions: ``(reward_funcs, reward_weights, resolved)``.

    ``reward_funcs`` and ``reward_weights`` go to ``GRPOTrainer(reward_funcs=...)`` and
    ``GRPOConfig.reward_weights``; ``resolved`` (plain data) is the preset after overrides with every
    option filled in, to save with the run. Raises :class:`PresetError` naming the file, line and field.
    """
    preset = read_preset(resolve_preset(name_or_path))
    override_preset(preset, overrides)
    context = {"cost_model": cost_model, "checker": checker, "tokenizer": tokenizer, "tools": tools}
    funcs, weights, entries = build_rewards(preset, context)
    margin = check_preset(preset, funcs, weights, entries)
    return funcs, weights, resolved_config(preset, entries, margin, cost_model)


def read_preset(path: Path) -> Preset:
    """The preset file as data, kept with its text (for line numbers)."""
    source = str(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise PresetError(source, "<yaml>", f"not valid YAML: {getattr(exc, 'problem', exc)}", line) from exc
    if not isinstance(data, dict):
        raise PresetError(source, "<top>", "expected a mapping with 'rewards' (and optional description, ordering)")
    return Preset(source, text, data)


def override_preset(preset: Preset, overrides: Mapping[str, Any] | Sequence[str] | None) -> None:
    """Apply ``overrides`` to ``preset.data`` in order, recording each (errors name the override)."""
    for key, value, raw in parse_overrides(overrides):
        apply_override(preset.data, key, value, f"override {raw!r}")
        preset.applied.append((key, value, raw))


def available_presets() -> dict[str, Path]:
    """Preset names -> files, over ``$PTE_RL_REWARDS_DIR`` then the built-in presets."""
    return available(REWARDS_DIR_VARIABLE, BUILTIN_PRESETS_DIR, ".yaml")


def resolve_preset(name_or_path: str | os.PathLike[str]) -> Path:
    """The preset file of a name (``$PTE_RL_REWARDS_DIR``, then the built-ins) or a path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise PresetError(text, "<file>", "no such preset file")
        return path
    directories = search_dirs(REWARDS_DIR_VARIABLE, BUILTIN_PRESETS_DIR)
    for directory in directories:
        path = directory / f"{text}.yaml"
        if path.is_file():
            return path
    raise PresetError(
        text,
        "<name>",
        f"no preset of that name; available: {sorted(available_presets())} "
        f"(searched {[str(d) for d in directories]})",
    )

"""The recipe's configuration: one tree of dataclasses, one YAML file, one dotted override syntax.

    model_name_or_path: tiny
    env:      {name: arith, options: {}, max_turns: 4}
    reward:   {preset: pte, overrides: {}}            # overrides: {pte.weight: 0.3}
    pricing:  {gamma: 0.005, hardware: h100_pcie, mode: paper, cache: evict, attention: paper, delta: null}
    eval:     {n: 200, samples: 4, temperature: 0.7, at_start: true, only: false}
    patterns: {compute_tools: null, toolsets: null, tool_families: true}
    harness:  {variants: [], tool_names: [], argument_names: [], descriptions: [], syntaxes: [], per: group}
    correct_advantage_floor: 0.0
    credit: trajectory       # or turn: a penalised rollout's efficiency advantage spread over its turns by cost
    dry_run: false           # resolve and print everything, train nothing (recipes/grpo_pte.py)
    learning_rate: 2.0e-4    # every other top-level key is a field of TRL's GRPOConfig, flat

On the command line, ``--key value`` or ``--key=value`` where the key may be dotted
(``--env.options.n_train 500``, ``--reward.overrides.pte.weight 0.3``, ``--pricing.gamma 0.004``);
values are read as YAML scalars. GRPOConfig's own flat keys (``--learning_rate 1e-4``) go to TRL's
parser unchanged. ``--config FILE`` replaces the default file. An old key (``env_name``,
``reward_preset``, ``pte_gamma``, ...) or an unknown one is an :class:`RecipeConfigError` naming the
file:line (or the command line), the key, and the new key or the known ones.

No torch and no TRL at import time; :func:`grpo_config_fields` imports TRL when called.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pte_rl.errors import InputError
from pte_rl.pricing.resolve import PricingConfig, check_pricing, pricing_to_dict
from pte_rl.training.sections import (
    EnvConfig,
    EvalConfig,
    HarnessConfig,
    PatternsConfig,
    RecipeConfig,
    RewardConfig,
)


class RecipeConfigError(InputError):
    """A bad recipe config key or value: the message names file:line (or the command line) and the field."""


SECTIONS: dict[str, type] = {
    "env": EnvConfig, "reward": RewardConfig, "pricing": PricingConfig, "eval": EvalConfig, "patterns": PatternsConfig,
    "harness": HarnessConfig,
}
FREE_MAPPINGS = ("env.options", "reward.overrides")  # their keys are checked by the env / the preset loader
# Keys of the flat recipe arguments before the tree, and what replaces them.
OLD_KEYS = {
    "env_name": "env.name", "env_kwargs": "env.options", "max_turns": "env.max_turns",
    "reward_preset": "reward.preset", "reward_overrides": "reward.overrides",
    "pte_gamma": "pricing.gamma", "hardware": "pricing.hardware", "gamma_mode": "pricing.mode",
    "pte_cache": "pricing.cache", "pte_attention": "pricing.attention", "pte_delta": "pricing.delta",
    "eval_n": "eval.n", "eval_samples": "eval.samples", "eval_temperature": "eval.temperature",
    "eval_at_start": "eval.at_start", "eval_only": "eval.only", "env-arg": "env.options.NAME",
}


@dataclass
class RecipeArgs:
    """A parsed recipe command line: the tree, GRPOConfig's settings, and where each came from."""

    config: RecipeConfig
    """The recipe's own tree."""
    training: dict[str, Any]
    """GRPOConfig fields set by the YAML file (TRL's parser applies ``training_argv`` on top)."""
    training_argv: list[str]
    """GRPOConfig's flat ``--key value`` arguments of the command line, unchanged."""
    source: str
    """The YAML file read."""
    origins: dict[str, str] = field(default_factory=dict)
    """Dotted key -> where it was set (``file:line`` or ``command line (--key)``)."""

    def where(self, key: str) -> str:
        """Where ``key`` (or the nearest section above it) was set; the file when nowhere."""
        parts = key.split(".")
        for cut in range(len(parts), 0, -1):
            if ".".join(parts[:cut]) in self.origins:
                return self.origins[".".join(parts[:cut])]
        return self.source


def grpo_config_fields() -> set[str]:
    """The field names of TRL's GRPOConfig (imports TRL)."""
    from trl.trainer.grpo_config import GRPOConfig

    return {f.name for f in dataclasses.fields(GRPOConfig)}


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """1-based line of every mapping key of a YAML text, by key path.

    >>> key_lines("a: 1\\nenv:\\n  name: x\\n")[("env", "name")]
    3
    """
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, str(key.value))] = key.start_mark.line + 1
                walk(value, (*path, str(key.value)))

    try:
        walk(yaml.compose(text), ())
    except yaml.YAMLError:
        pass
    return lines


def split_command_line(argv: Sequence[str], trl_fields: set[str]) -> tuple[str | None, list[tuple[str, Any]],
                                                                          list[str]]:
    """``(--config FILE, [(dotted key, YAML value)], GRPOConfig's flat arguments)`` of a command line."""
    config: str | None = None
    overrides: list[tuple[str, Any]] = []
    training_argv: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if not token.startswith("--") or token == "--":
            raise RecipeConfigError(f"command line: expected --key value, got {token!r}")
        key, sep, inline = token[2:].partition("=")
        head = key.split(".")[0]
        if key in OLD_KEYS or (head in OLD_KEYS and "." in key):
            raise RecipeConfigError(f"command line: --{key} is no longer a key; use --{OLD_KEYS[head]}")
        if key in trl_fields:  # TRL's flat argument and its values, unchanged
            end = index + 1
            while end < len(argv) and not argv[end].startswith("--"):
                end += 1
            training_argv += argv[index:end]
            index = end
            continue
        if sep:
            text, index = inline, index + 1
        elif index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            text, index = argv[index + 1], index + 2
        else:
            raise RecipeConfigError(f"command line: --{key} needs a value")
        if key == "config":
            config = text
            continue
        check_key(key, "command line", trl_fields)
        overrides.append((key, parse_scalar(text)))
    return config, overrides, training_argv


def parse_scalar(text: str) -> Any:
    """A command-line value read as YAML: ``"0.3"`` -> 0.3, ``"true"`` -> True, ``"abc"`` -> ``"abc"``."""
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def check_key(key: str, where: str, trl_fields: set[str] | None = None) -> None:
    """Raise for a dotted key that names no field of the tree (nor of GRPOConfig, when given)."""
    parts = key.split(".")
    if parts[0] in OLD_KEYS:
        raise RecipeConfigError(f"{where}: field '{key}': no longer a key; use '{OLD_KEYS[parts[0]]}'")
    if len(parts) == 1:
        if parts[0] in _names(RecipeConfig) or trl_fields is None or parts[0] in trl_fields:
            return
        raise RecipeConfigError(f"{where}: field '{key}': unknown; expected a recipe field "
                                f"({', '.join(_names(RecipeConfig))}) or a field of TRL's GRPOConfig")
    section = SECTIONS.get(parts[0])
    if section is None:
        raise RecipeConfigError(f"{where}: field '{key}': unknown; dotted keys start with one of "
                                f"{', '.join(SECTIONS)}")
    if ".".join(parts[:2]) in FREE_MAPPINGS:
        return
    if len(parts) > 2 or parts[1] not in _names(section):
        raise RecipeConfigError(f"{where}: field '{key}': unknown; {parts[0]} has "
                                f"{', '.join(_names(section))}")


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted ``key`` in a nested dict; under env.options / reward.overrides the rest is one key."""
    parts = key.split(".")
    cut = 2 if ".".join(parts[:2]) in FREE_MAPPINGS and len(parts) > 2 else len(parts) - 1
    path, last = parts[:cut], ".".join(parts[cut:])
    node = data
    for part in path:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def read_yaml(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """A recipe config file's mapping and its key lines; bad YAML raises naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RecipeConfigError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML "
                                f"({getattr(exc, 'problem', exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeConfigError(f"{path}: expected a mapping of config keys")
    return data, key_lines(text)


def parse_recipe_args(argv: Sequence[str], default_config: str | os.PathLike[str],
                      trl_fields: set[str] | None = None) -> RecipeArgs:
    """The recipe's command line and config file -> :class:`RecipeArgs` (every key checked)."""
    fields = grpo_config_fields() if trl_fields is None else trl_fields
    config_path, overrides, training_argv = split_command_line(list(argv), fields)
    source = str(config_path or default_config)
    data, lines = read_yaml(source)
    origins: dict[str, str] = {}
    for key in list(data):
        where = f"{source}:{lines.get((str(key),), 1)}"
        origins[str(key)] = where
        check_key(str(key), where, fields)
        if isinstance(data[key], dict) and key in SECTIONS:
            for sub in data[key]:
                sub_where = f"{source}:{lines.get((str(key), str(sub)), 1)}"
                origins[f"{key}.{sub}"] = sub_where
                check_key(f"{key}.{sub}", sub_where, fields)
                for leaf in data[key][sub] if f"{key}.{sub}" in FREE_MAPPINGS and isinstance(
                        data[key][sub], dict) else ():
                    origins[f"{key}.{sub}.{leaf}"] = f"{source}:{lines.get((str(key), str(sub), str(leaf)), 1)}"
    tree = {k: v for k, v in data.items() if k in _names(RecipeConfig)}
    training = {k: v for k, v in data.items() if k not in tree}
    for key, value in overrides:
        set_key(tree, key, value)
        origins[key] = f"command line (--{key})"
    args = RecipeArgs(config=RecipeConfig(), training=training, training_argv=training_argv, source=source,
                      origins=origins)
    args.config = build_config(tree, args.where)
    return args


def build_config(tree: dict[str, Any], where: Callable[[str], str]) -> RecipeConfig:
    """The dataclass tree of a nested dict; a value of the wrong type raises naming ``where(key)``."""
    values: dict[str, Any] = {}
    hints = typing.get_type_hints(RecipeConfig)
    for name, value in tree.items():
        if name in SECTIONS:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise RecipeConfigError(f"{where(name)}: field '{name}': expected a mapping, got {value!r}")
            section_hints = typing.get_type_hints(SECTIONS[name])
            values[name] = SECTIONS[name](**{
                sub: coerce(v, section_hints[sub], f"{name}.{sub}", where) for sub, v in value.items()
            })
        else:
            values[name] = coerce(value, hints[name], name, where)
    config = RecipeConfig(**values)
    if config.credit not in ("trajectory", "turn"):
        raise RecipeConfigError(
            f"{where('credit')}: field 'credit': expected trajectory or turn, got {config.credit!r}")
    try:
        check_pricing(config.pricing, where, prefix="pricing.")
    except InputError as exc:
        raise RecipeConfigError(str(exc)) from None
    return config


def coerce(value: Any, annotation: Any, key: str, where: Callable[[str], str]) -> Any:
    """``value`` as the field's type: an int for a float, a number for a str; else a RecipeConfigError."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    allowed = typing.get_args(annotation) if union else (annotation,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (bool, dict, list) and isinstance(value, origin):
            return value
        if origin is str and isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    if key == "pricing.hardware" and isinstance(value, str):
        return value
    names = " or ".join("null" if k is type(None) else getattr(k, "__name__", str(k)) for k in allowed)
    raise RecipeConfigError(f"{where(key)}: field '{key}': expected {names}, got {value!r}")


def bind_env_options(env: str, options: dict[str, Any],
                     where: Callable[[str], str] = lambda key: "command line") -> dict[str, Any]:
    """``options`` bound against the environment's ``load_environment`` signature and typed by it.

    An unknown environment or option raises naming ``where(key)``; a number given for a ``str``
    option becomes its text, a list for a tuple a tuple, an int for a float a float.
    """
    from pte_rl.rollout.env import environment_options

    try:
        accepted = environment_options(env)
    except (ValueError, FileNotFoundError, ImportError, AttributeError) as exc:
        raise RecipeConfigError(f"{where('env.name')}: field 'env.name': {exc}") from None
    bound = {}
    for name, value in options.items():
        if name not in accepted or accepted[name].kind in (inspect.Parameter.VAR_POSITIONAL,
                                                           inspect.Parameter.VAR_KEYWORD):
            raise RecipeConfigError(f"{where(f'env.options.{name}')}: field 'env.options.{name}': {env} accepts "
                                    f"{', '.join(accepted) or 'no options'}")
        annotation = str(accepted[name].annotation)
        if annotation.startswith("str") and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        elif "tuple" in annotation and isinstance(value, list):
            value = tuple(value)
        elif annotation.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        bound[name] = value
    return bound


def check_reward_preset(preset: str, where: str = "command line") -> Path:
    """The preset's file; a name or path that resolves to none raises naming ``where``."""
    from pte_rl.rewards.loader import resolve_preset

    try:
        return resolve_preset(preset)
    except InputError as exc:
        raise RecipeConfigError(f"{where}: field 'reward.preset': {exc}") from None


def bind(args: RecipeArgs) -> RecipeConfig:
    """Check what the keys name: env options against the environment, the reward preset resolves.

    Returns the config with its env options typed by ``load_environment``'s signature.
    """
    config = args.config
    config.env.options = bind_env_options(config.env.name, config.env.options, args.where)
    check_reward_preset(config.reward.preset, args.where("reward.preset"))
    return config


def config_to_dict(config: RecipeConfig) -> dict[str, Any]:
    """Plain data of the tree, in the shape of a config file."""
    data = dataclasses.asdict(config)
    data["pricing"] = pricing_to_dict(config.pricing)
    return data

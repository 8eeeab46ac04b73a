"""The sections of the recipe's configuration tree: one dataclass each, a docstring under every field.

How they are read from YAML and the command line: :mod:`pte_rl.training.config`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pte_rl.patterns.base import DEFAULT_TOOLSETS, PatternConfig
from pte_rl.pricing.resolve import PricingConfig


@dataclass
class EnvConfig:
    """The environment: which one, its load_environment options, and the rollout's turn bound."""

    name: str = "arith"
    """Environment name (pte_rl/envs/<name>.py, or $PTE_RL_ENVS_DIR) or a path to a .py file."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the environment's load_environment (bound against its signature)."""
    max_turns: int | None = None
    """Assistant turns per rollout before it is cut; null: the environment's own default."""


@dataclass
class RewardConfig:
    """The reward: a preset and overrides of its entries."""

    preset: str = "pte"
    """Preset name (pte_rl/rewards/presets, or $PTE_RL_REWARDS_DIR) or a path to a preset YAML."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Preset overrides by dotted key, e.g. {pte.weight: 0.3, pte.options.method: budget}."""


@dataclass
class EvalConfig:
    """The held-out evaluation before and after training."""

    n: int = 100
    """Held-out problems evaluated."""
    samples: int = 3
    """Samples per held-out problem."""
    temperature: float = 0.7
    """Sampling temperature of the evaluation."""
    at_start: bool = True
    """Also evaluate the starting policy (output_dir/eval_start/)."""
    only: bool = False
    """Do not train: evaluate output_dir/final (and the starting policy) again; config.yaml stays."""


@dataclass
class PatternsConfig:
    """How the inefficiency-pattern detectors read tool names (metrics and evaluation)."""

    compute_tools: list[str] | None = None
    """Tools whose call after a stated answer is confirmatory; null: the code family (python_tool, ...)."""
    toolsets: dict[str, Any] | None = None
    """{set: [tools]} for tool mixing; null: the defaults, unlisted tools going by their family."""
    tool_families: bool = True
    """Recognise tools by family from their names (search, reading, code); false: only the lists."""

    def build(self) -> PatternConfig:
        """The detectors' :class:`pte_rl.patterns.PatternConfig`."""
        compute_tools = None if self.compute_tools is None else tuple(self.compute_tools)
        toolsets = DEFAULT_TOOLSETS if self.toolsets is None else self.toolsets
        return PatternConfig(compute_tools=compute_tools, toolsets=toolsets, tool_families=self.tool_families)


@dataclass
class HarnessConfig:
    """Harness randomisation: each GRPO group (or rollout) sees a harness drawn from a family
    (pte_rl.rollout.harness, docs/harness.md); off when no variant and no axis is given."""

    variants: list[str] = field(default_factory=list)
    """Built-in variant names (`training_family`: every built-in one not held out) or YAML/JSON files of
    variants; `training` is in the family only if listed."""
    tool_names: list[str] = field(default_factory=list)
    """Tool-name templates, e.g. ["{name}", "{name}_tool", "fn_{name}"]; every combination of the axes
    (this, argument_names, descriptions, syntaxes; an empty axis keeps the environment's) joins the family."""
    argument_names: list[str] = field(default_factory=list)
    """Argument-name templates with {tool} and {name}, e.g. ["{name}", "{tool}_{name}"]."""
    descriptions: list[str] = field(default_factory=list)
    """Description templates: {description}, {first_sentence}, {name}."""
    syntaxes: list[str | None] = field(default_factory=list)
    """Call syntaxes: null (the training default), hermes, llama3_json, fenced_code, pythonic."""
    per: str = "group"
    """`group`: one harness per GRPO group (its rollouts are compared under one harness); `rollout`: one each."""
    seed: int = 0
    """Seeds the draws (a hash of seed, step and prompt)."""

    def build(self) -> Any:
        """The :class:`pte_rl.rollout.harness.HarnessFamily`, or None when randomisation is off."""
        from pte_rl.errors import InputError
        from pte_rl.rollout.harness import TRAINING_FAMILY, HarnessFamily, harness_product, resolve_variants

        axes: dict[str, list[Any]] = {
            "variants": list(self.variants), "tool_names": self.tool_names, "argument_names": self.argument_names,
            "descriptions": self.descriptions, "syntaxes": self.syntaxes}
        for key, values in axes.items():
            bad = [v for v in values if not isinstance(v, str) and not (key == "syntaxes" and v is None)]
            if bad:
                raise InputError(f"harness.{key}: expected a list of strings, got {bad[0]!r} in {values}")
        names = [n for v in self.variants for n in (TRAINING_FAMILY if v == "training_family" else [v])]
        members = resolve_variants(names) if names else []
        if self.tool_names or self.argument_names or self.descriptions or self.syntaxes:
            def fields(harness: Any) -> str:  # what a harness shows, without its name
                return json.dumps({k: v for k, v in harness.describe().items() if k != "name"}, sort_keys=True)

            listed = {fields(h) for h in members}
            members += [h for h in harness_product(self.tool_names, self.argument_names, self.descriptions,
                                                   self.syntaxes) if fields(h) not in listed]
        return HarnessFamily(tuple(members), per=self.per, seed=self.seed) if members else None


@dataclass
class RecipeConfig:
    """What pte_rl adds to TRL's GRPOConfig: the policy, environment, reward, pricing and evaluation."""

    model_name_or_path: str = "tiny"
    """A local model dir or hub name; `tiny` builds (or reuses) the embedded tiny policy."""
    tiny_dir: str | None = None
    """Where the tiny policy is cached (default: $PTE_RL_CACHE or ~/.cache/pte_rl)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """The reward preset."""
    pricing: PricingConfig = field(default_factory=PricingConfig)
    """The price of a token (pte_rl.pricing.resolve)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """The held-out evaluation."""
    patterns: PatternsConfig = field(default_factory=PatternsConfig)
    """How the pattern detectors read tool names."""
    harness: HarnessConfig = field(default_factory=HarnessConfig)
    """Harness randomisation in training (off by default)."""
    correct_advantage_floor: float | None = None
    """If set (e.g. 0.0), a correct rollout's GRPO advantage is raised to at least this."""
    credit: str = "trajectory"
    """`trajectory`: every token of a rollout gets its advantage (TRL's GRPO); `turn`: a penalised
    rollout's efficiency advantage is spread over its turns by their attributed PTE (pte_rl.training.credit)."""
    dry_run: bool = False
    """Resolve everything (policy config, environment and splits, gamma, reward preset, GRPOConfig,
    launch topology), print it as YAML and exit 0 without training or loading weights; exit 2 on the
    first problem (recipes/grpo_pte.py)."""

"""The sections of the recipe's configuration tree: one dataclass each, a docstring under every field.

How they are read from YAML and the command line: :mod:`pte_rl.training.config`.
"""

from __future__ import annotations

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
    correct_advantage_floor: float | None = None
    """If set (e.g. 0.0), a correct rollout's GRPO advantage is raised to at least this."""
    credit: str = "trajectory"
    """`trajectory`: every token of a rollout gets its advantage (TRL's GRPO); `turn`: a penalised
    rollout's efficiency advantage is spread over its turns by their attributed PTE (pte_rl.training.credit)."""
    dry_run: bool = False
    """Resolve everything (policy config, environment and splits, gamma, reward preset, GRPOConfig,
    launch topology), print it as YAML and exit 0 without training or loading weights; exit 2 on the
    first problem (recipes/grpo_pte.py)."""

"""Harness variants: re-skin an environment's tools, call syntax, prompt and answer format.

  spec    Harness (the fields of a harness), the built-in variants, user variants from YAML / JSON, and
          HarnessFamily (what training draws from, per GRPO group or per rollout)
  reskin  reskin(env, harness): shown tools calling the real ones, rewritten prompts, the answer checker;
          make_skin: the same for one rollout's tools and checker
  probe   the probe's measures over trajectories: accuracy, PTE, tokens, call errors, format collapse,
          and the overhead of each harness against the training one

See docs/harness.md.
"""

from pte_rl.rollout.harness.reskin import ReskinnedEnvironment, Skin, make_skin, plan, reskin, shown_prompt
from pte_rl.rollout.harness.spec import (
    BUILTIN_VARIANTS,
    TRAINING_FAMILY,
    Harness,
    HarnessFamily,
    harness_from_mapping,
    harness_product,
    load_variant_file,
    resolve_variants,
)

__all__ = [
    "BUILTIN_VARIANTS", "TRAINING_FAMILY", "Harness", "HarnessFamily", "ReskinnedEnvironment", "Skin",
    "harness_from_mapping", "harness_product", "load_variant_file", "make_skin", "plan", "reskin",
    "resolve_variants", "shown_prompt",
]

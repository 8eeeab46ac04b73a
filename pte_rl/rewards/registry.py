"""What a preset's ``function:`` names: a built-in short name, or a dotted path to any reward.

    function: pte                            a built-in (:data:`REGISTRY`)
    function: my_pkg.rewards:brevity         a dotted path, ``module:attribute`` ...
    function: my_pkg.rewards.brevity         ... or ``module.attribute``

What the name resolves to is one of two things (:func:`is_reward_function`):

* **a reward function** in TRL's contract ``(prompts, completions, completion_ids, **kwargs) ->
  list[float | None]``: a plain function with a ``completions`` parameter. It is used as it is, so its
  entry takes no ``options``, and TRL logs it under its ``__name__``.
* **a class or factory**, called with the entry's ``options`` plus the context keys (``cost_model``,
  ``checker``, ``tokenizer``, ``tools``) that its signature names, and returning the reward.

A reward with a ``bounds()`` method (every built-in) enters the preset's ordering check; one without
is listed as unbounded in the resolved config and left out of the margin.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from pte_rl.rewards.base import COMMON_OPTIONS, GroupReward
from pte_rl.rewards.baselines import DAPOOverlongReward, KimiLengthReward, LinearCallPenalty, LinearTokenPenalty
from pte_rl.rewards.functions import CorrectnessReward, CostPenalty, PTEPenalty
from pte_rl.rewards.otc import OTCToolReward

REGISTRY: dict[str, Callable[..., Any]] = {
    "correctness": CorrectnessReward,
    "pte": PTEPenalty,
    "cost_penalty": CostPenalty,
    "kimi_length": KimiLengthReward,
    "dapo_overlong": DAPOOverlongReward,
    "otc_tool": OTCToolReward,
    "linear_token_penalty": LinearTokenPenalty,
    "linear_call_penalty": LinearCallPenalty,
}


def resolve_function(name: str) -> Callable[..., Any]:
    """The callable ``name`` stands for: a key of :data:`REGISTRY`, else a dotted path (imported).

    Raises ``LookupError`` with what was expected (the loader adds the file, line and field).
    """
    if not isinstance(name, str) or not name:
        raise LookupError(f"expected a built-in name {sorted(REGISTRY)} or a dotted path, got {name!r}")
    if name in REGISTRY:
        return REGISTRY[name]
    module_name, _, attribute = name.partition(":") if ":" in name else name.rpartition(".")
    if not module_name or not attribute:
        raise LookupError(
            f"expected one of {sorted(REGISTRY)} or a dotted path (my_pkg.rewards:my_reward), got {name!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"cannot import {module_name!r} for {name!r} ({type(exc).__name__}: {exc})") from exc
    found = getattr(module, attribute, None)
    if found is None or not callable(found):
        raise LookupError(f"module {module_name!r} has no callable {attribute!r}")
    return found  # type: ignore[no-any-return]


def is_reward_function(target: Callable[..., Any]) -> bool:
    """A plain function in TRL's contract (it has a ``completions`` parameter), not a class or factory."""
    if inspect.isclass(target):
        return False
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return "completions" in parameters


def accepted_options(factory: Callable[..., Any]) -> set[str] | None:
    """The option names ``factory`` takes by keyword; None when it takes any (``**kwargs``)."""
    parameters = inspect.signature(factory).parameters
    named = {
        n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"
    }
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        if inspect.isclass(factory) and issubclass(factory, GroupReward):
            return named | set(COMMON_OPTIONS)  # a built-in's **common: Unpack[CommonOptions]
        return None
    return named

"""The price of a token, resolved once: a pricing section (+ the model's config) -> a CostModel.

Every caller that prices trajectories goes through :func:`resolve_pricing`: the training recipe
(``pricing:`` of its config), ``pte-rl score`` and ``pte-rl patterns`` (their gamma options), and the
ablation report (a run's saved ``config.yaml``). The rules:

    gamma   the section's ``gamma`` when given (mode ``given``); else
            :func:`pte_rl.pricing.gamma.resolve_gamma` of the model's config on ``hardware``: a
            profile's measured gamma when it has one (mode ``measured``), else the formula (``mode``)
    delta   the section's ``delta`` when given; else, when gamma comes from the profile (not given),
            the profile's measured delta where it has one; else 0

No torch, no TRL.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pte_rl.errors import InputError
from pte_rl.pricing.cost import ATTENTION_MODES, CACHE_POLICIES, CostModel
from pte_rl.pricing.gamma import DEFAULT_CONTEXT_TOKENS, GAMMA_MODES, resolve_gamma
from pte_rl.pricing.hardware import DEFAULT_PROFILE, HardwareProfile


@dataclass
class PricingConfig:
    """How a run prices its trajectories (the ``pricing:`` section of a recipe config)."""

    gamma: float | None = None
    """A fixed gamma (prefill tokens per cached token per decoded token); null: from the model + hardware."""
    hardware: str | HardwareProfile = DEFAULT_PROFILE
    """Hardware profile (`pte-rl hardware`: a name, NAME:dense, or a profile JSON); ignored when gamma is set."""
    mode: str = "paper"
    """How gamma is derived from the model's config: paper (the paper's Eq. 2) or kv_bytes."""
    cache: str = "evict"
    """Cache policy: evict (the paper's: the whole context is prefilled every turn), reuse or measured."""
    attention: str = "paper"
    """Decode-attention term: paper (gamma*C*D) or exact (gamma*(C*D + D*(D-1)/2))."""
    delta: float | None = None
    """Per-decoded-token constant; null: the profile's measured one when gamma comes from it, else 0."""
    active_params: float | str | None = None
    """Active parameters per token for the formula (e.g. 3.3e9 or 3.3B); null: estimated from the config."""
    dtype_bytes: int | None = None
    """kv_bytes mode: bytes per K/V entry; null: the config's dtype, else 2."""
    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    """kv_bytes mode: the context length at which sliding-window layers are priced."""


def check_pricing(pricing: PricingConfig, source: str | Callable[[str], str] = "pricing",
                  prefix: str = "") -> None:
    """Raise InputError for a value no price can be made of, naming where it was set and the field.

    ``source`` is a label, or a function of the field's dotted name (``prefix + name``) giving one.
    """
    def fail(name: str, expected: str) -> InputError:
        where = source(prefix + name) if callable(source) else source
        return InputError(f"{where}: field '{prefix}{name}': {expected}, got {getattr(pricing, name)!r}")

    for name in ("gamma", "delta"):
        value = getattr(pricing, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value) or value < 0):
            raise fail(name, "expected a finite non-negative number or null")
    for name, allowed in (("mode", GAMMA_MODES), ("cache", CACHE_POLICIES), ("attention", ATTENTION_MODES)):
        if getattr(pricing, name) not in allowed:
            raise fail(name, f"expected one of {', '.join(allowed)}")
    context = pricing.context_tokens
    if isinstance(context, bool) or not isinstance(context, int) or context <= 0:
        raise fail("context_tokens", "expected a positive integer")
    if pricing.dtype_bytes is not None and (not isinstance(pricing.dtype_bytes, int) or pricing.dtype_bytes <= 0):
        raise fail("dtype_bytes", "expected a positive integer or null")


def resolve_pricing(pricing: PricingConfig, model_config: str | os.PathLike[str] | dict[str, Any] | None = None,
                    *, source: str = "pricing") -> tuple[CostModel, dict[str, Any]]:
    """``(CostModel, derivation)`` of a pricing section; see the module docstring for the rules.

    ``derivation`` is plain data: gamma's derivation (``mode`` is ``given``, ``measured``, ``paper`` or
    ``kv_bytes``), plus ``delta``, ``delta_source`` (``given``, ``profile`` or ``default``), ``cache`` and
    ``attention``.

    >>> model, how = resolve_pricing(PricingConfig(gamma=0.005))
    >>> (model.gamma, model.delta, how["mode"], how["delta_source"])
    (0.005, 0.0, 'given', 'default')
    >>> model, how = resolve_pricing(PricingConfig(gamma=0.005, delta=2.0, cache="reuse"))
    >>> (model.delta, model.cache, how["delta_source"])
    (2.0, 'reuse', 'given')
    """
    check_pricing(pricing, source)
    if pricing.gamma is not None:
        gamma, measured_delta = float(pricing.gamma), None
        derivation: dict[str, Any] = {"mode": "given", "gamma": gamma}
    else:
        result = resolve_gamma(model_config, pricing.hardware, mode=pricing.mode,
                               active_params=pricing.active_params, dtype_bytes=pricing.dtype_bytes,
                               context_tokens=pricing.context_tokens)
        gamma, measured_delta, derivation = result.gamma, result.delta, result.to_dict()
    if pricing.delta is not None:
        delta, delta_source = float(pricing.delta), "given"
    elif measured_delta is not None:
        delta, delta_source = float(measured_delta), "profile"
    else:
        delta, delta_source = 0.0, "default"
    model = CostModel(gamma=gamma, cache=pricing.cache, attention=pricing.attention, delta=delta)  # type: ignore[arg-type]
    derivation.update(delta=delta, delta_source=delta_source, cache=pricing.cache, attention=pricing.attention)
    return model, derivation


def pricing_to_dict(pricing: PricingConfig) -> dict[str, Any]:
    """Plain data of a pricing section (a HardwareProfile becomes its name)."""
    data = asdict(pricing)
    if isinstance(pricing.hardware, HardwareProfile):
        data["hardware"] = pricing.hardware.name
    return data

"""gamma: the price of one decoded token attending to one cached token, in prefill tokens.

PTE prices turn i as ``prefill_i + gamma * context_i * decode_i`` (pte_rl.pricing.cost). Prefilling one
token costs ``2 * N_active`` FLOPs at the peak FLOP/s; decoding reads every cached token's K and V
from memory at the bandwidth. Their ratio is gamma. Two modes:

``paper`` (the paper's Eq. 2, exactly)::

    gamma = 2 * n_layers * d_model * (Hkv / Hq) * HOI / N_active          HOI = FLOP/s / (bytes/s)

  It assumes 2-byte K/V entries and ``head_dim * Hq == d_model``. Multi-head latent attention (MLA,
  ``kv_lora_rank`` in the config) caches one latent per layer that serves as both K and V, of width
  ``kv_lora_rank + qk_rope_head_dim``; it replaces ``2 * d_model * Hkv / Hq`` (K plus V)::

    gamma_MLA = n_layers * (kv_lora_rank + qk_rope_head_dim) * HOI / N_active

``kv_bytes`` (the bytes the hardware reads)::

    gamma = kv_bytes_per_token * HOI / (2 * N_active)
    kv_bytes_per_token = dtype_bytes * sum_layers elements_l * min(1, window_l / context)
    elements_l = 2 * Hkv * head_dim   (MLA: kv_lora_rank + qk_rope_head_dim)

  It departs from ``paper`` where ``head_dim * Hq != d_model`` (Qwen3, GLM-4.5, GPT-OSS) and for
  sliding-window layers, which read at most ``window`` tokens: their share depends on the context
  length, taken at ``context_tokens`` (default 8192) to give one number. With 2-byte entries, full
  attention and ``head_dim * Hq == d_model`` the two modes agree.

N_active is the user's figure when given, else estimated from the config
(:func:`pte_rl.pricing.model_config.estimate_active_params`, reported as an estimate). A hardware profile
with a measured gamma (``pte-rl calibrate``) overrides the formula: :func:`resolve_gamma`.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pte_rl.pricing.hardware import DEFAULT_PROFILE, HardwareError, ProfileSpec, load_profile
from pte_rl.pricing.model_config import ConfigError, ConfigSource, estimate_active_params, load_config, model_shape

GAMMA_MODES = ("paper", "kv_bytes")
DEFAULT_CONTEXT_TOKENS = 8192
PAPER_DTYPE_BYTES = 2  # the paper's formula counts 2-byte (BF16) K and V entries


@dataclass(frozen=True, slots=True)
class GammaResult:
    """gamma and how it was derived (every input the formula used)."""

    gamma: float
    mode: str  # "paper" | "kv_bytes" | "measured"
    hardware: str
    flops: float | None = None
    bandwidth: float | None = None
    hoi: float | None = None
    model_type: str | None = None
    num_layers: int | None = None
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    head_ratio: float | None = None
    head_dim: int | None = None
    attention: str | None = None
    kv_elements_per_layer: float | None = None
    kv_bytes_per_token: float | None = None
    dtype_bytes: int | None = None
    sliding_layers: int = 0
    sliding_window: int | None = None
    context_tokens: int | None = None
    active_params: float | None = None
    active_params_estimated: bool = False
    active_params_detail: dict[str, Any] | None = None
    delta: float | None = None
    model: str | None = None
    formula: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """A human-readable derivation, one item a line."""
        lines = [f"gamma = {self.gamma:.6g}   ({self.mode} mode, hardware {self.hardware})"]
        if self.mode == "measured":
            lines.append(f"  measured on this profile{f' for {self.model}' if self.model else ''}")
        else:
            lines += [
                f"  layers              {self.num_layers}",
                f"  hidden size d_model {self.hidden_size}",
                f"  heads Hq / Hkv      {self.num_attention_heads} / {self.num_key_value_heads}"
                f"  (ratio {self.head_ratio:.4g}, "
                + (f"head_dim {self.head_dim}, " if self.head_dim else "")
                + f"attention {self.attention})",
                f"  KV elements / layer {self.kv_elements_per_layer:g} per cached token",
            ]
            if self.mode == "kv_bytes":
                lines.append(f"  KV bytes / token    {self.kv_bytes_per_token:g} ({self.dtype_bytes}-byte entries)")
                if self.sliding_layers:
                    lines.append(f"  sliding layers      {self.sliding_layers} (window {self.sliding_window}, "
                                 f"priced at context {self.context_tokens})")
            estimated = " (estimated from the config)" if self.active_params_estimated else " (given)"
            lines += [
                f"  active params       {self.active_params:.4g}{estimated}",
                f"  HOI                 {self.hoi:.4g} FLOP/byte = {self.flops:.4g} FLOP/s / {self.bandwidth:.4g} B/s",
                f"  formula             {self.formula}",
            ]
        if self.delta is not None:
            lines.append(f"  delta               {self.delta:.6g} (measured)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


_PARAM_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_params(value: Any, field: str = "active_params") -> float:
    """A parameter count: a positive number, or a string such as ``"3.3B"``, ``"5.1e9"``, ``"870M"``."""
    if isinstance(value, bool):
        raise ConfigError(None, field, f"expected a positive parameter count, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([kKmMbBgGtT]?)\s*", str(value))
        try:
            number = float(match.group(1)) * _PARAM_SUFFIX[match.group(2).lower()] if match else math.nan
        except ValueError:
            number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(None, field, f"expected a positive parameter count such as 3.3e9 or 3.3B, got {value!r}")
    return number


def gamma_formula(num_layers: int, kv_elements_per_layer: float, hoi: float, active_params: float) -> float:
    """``num_layers * kv_elements_per_layer * HOI / N_active`` with 2-byte entries.

    With ``kv_elements_per_layer = 2 * d_model * Hkv / Hq`` this is the paper's
    ``2 * n_layers * d_model * (Hkv/Hq) * HOI / N_active``.

    >>> round(gamma_formula(28, 2 * 3584 / 7, 756.5, 6.53e9), 6)   # Qwen2.5-7B on H100 PCIe
    0.003322
    """
    return num_layers * kv_elements_per_layer * hoi / active_params


def compute_gamma(
    config: ConfigSource,
    hardware: ProfileSpec = DEFAULT_PROFILE,
    *,
    mode: str = "paper",
    active_params: Any = None,
    dtype_bytes: int | None = None,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> GammaResult:
    """gamma from a model config and a hardware profile by formula; see the module docstring.

    ``active_params`` given (a number or ``"3.3B"``) is used as is; else it is estimated from the
    config. ``dtype_bytes`` (kv_bytes mode) defaults to the config's dtype, else 2.
    """
    if mode not in GAMMA_MODES:
        raise ConfigError(None, "mode", f"expected one of {GAMMA_MODES}, got {mode!r}")
    profile = load_profile(hardware)
    if profile.hoi is None:
        raise HardwareError(
            f"profile {profile.name!r} has a measured gamma but no flops/bandwidth to derive one from a config"
        )
    cfg, source = load_config(config)
    shape = model_shape(cfg, source=source)
    notes: list[str] = []
    detail = None
    if active_params is None:
        estimate = estimate_active_params(cfg, source=source)
        n_active, estimated, detail = float(estimate.total), True, estimate.to_dict()
        if not estimate.checked_family:
            notes.append(f"model_type {shape.model_type!r} is not among the families whose estimates are checked "
                         "against published counts; pass --active-params for a figure you trust")
    else:
        n_active, estimated = parse_params(active_params), False
    hoi = profile.hoi
    windows = [w for w in shape.layer_windows if w is not None]
    kv_bytes = None
    if mode == "paper":
        if shape.attention == "mla":
            elements = float(shape.kv_elements_per_layer)
            formula = (f"{shape.num_layers} * ({shape.kv_lora_rank} + {shape.qk_rope_head_dim}) * {hoi:.6g}"
                       f" / {n_active:.6g}")
            notes.append("MLA: one cached latent of kv_lora_rank + qk_rope_head_dim serves as K and V")
        else:
            elements = 2 * shape.hidden_size * shape.head_ratio
            formula = (f"2 * {shape.num_layers} * {shape.hidden_size} * ({shape.num_key_value_heads}/"
                       f"{shape.num_attention_heads}) * {hoi:.6g} / {n_active:.6g}")
            if shape.head_size * shape.num_attention_heads != shape.hidden_size:
                notes.append(f"head_dim * Hq = {shape.head_size * shape.num_attention_heads} != d_model "
                             f"{shape.hidden_size}: the kv_bytes mode counts the cache the model really holds")
        if windows:
            notes.append(f"{len(windows)} sliding-window layers are priced as full attention, as in the paper")
        value = gamma_formula(shape.num_layers, elements, hoi, n_active)
        entry_bytes = PAPER_DTYPE_BYTES
    else:
        entry_bytes = dtype_bytes or shape.dtype_bytes or PAPER_DTYPE_BYTES
        if not isinstance(context_tokens, int) or context_tokens <= 0:
            raise ConfigError(None, "context_tokens", f"expected a positive integer, got {context_tokens!r}")
        per_layer = shape.kv_elements_per_layer
        read = sum(per_layer * (1.0 if w is None else min(1.0, w / context_tokens)) for w in shape.layer_windows)
        elements = read / shape.num_layers
        kv_bytes = read * entry_bytes
        value = kv_bytes * hoi / (2 * n_active)
        formula = f"{kv_bytes:g} B/token * {hoi:.6g} / (2 * {n_active:.6g})"
    return GammaResult(
        gamma=value, mode=mode, hardware=profile.name, flops=profile.flops, bandwidth=profile.bandwidth, hoi=hoi,
        model_type=shape.model_type, num_layers=shape.num_layers, hidden_size=shape.hidden_size,
        num_attention_heads=shape.num_attention_heads, num_key_value_heads=shape.num_key_value_heads,
        head_ratio=shape.head_ratio, head_dim=shape.head_dim, attention=shape.attention,
        kv_elements_per_layer=elements, kv_bytes_per_token=kv_bytes, dtype_bytes=entry_bytes,
        sliding_layers=len(windows), sliding_window=max(windows) if windows else None,
        context_tokens=context_tokens if (mode == "kv_bytes" and windows) else None,
        active_params=n_active, active_params_estimated=estimated, active_params_detail=detail,
        model=source, formula=formula, notes=notes,
    )


def resolve_gamma(
    config: ConfigSource | None = None,
    hardware: ProfileSpec = DEFAULT_PROFILE,
    **kwargs: Any,
) -> GammaResult:
    """gamma for a run: a profile's measured gamma when it has one, else :func:`compute_gamma`.

    A measured profile also supplies ``delta``. Without a measured gamma a config is required.
    """
    profile = load_profile(hardware)
    if profile.gamma is not None:
        return GammaResult(gamma=profile.gamma, mode="measured", hardware=profile.name, flops=profile.flops,
                           bandwidth=profile.bandwidth, hoi=profile.hoi, delta=profile.delta, model=profile.model)
    if config is None:
        raise ConfigError(None, "model_config",
                          f"a model config is needed: profile {profile.name!r} has no measured gamma")
    result = compute_gamma(config, profile, **kwargs)
    if profile.delta is not None:
        result = GammaResult(**{**result.to_dict(), "delta": profile.delta})
    return result

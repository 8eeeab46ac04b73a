"""`pte-rl gamma CONFIG`: gamma for a model on a hardware profile, with its derivation.

Also holds the gamma-source options that `pte-rl score` and `pte-rl patterns` share:
:func:`add_hardware_arguments`, :func:`profile_from_args`, :func:`gamma_from_args`, and
:func:`cost_model_from_args`, which turns them into a CostModel through the one resolver
(:func:`pte_rl.pricing.resolve.resolve_pricing`, as the training recipe and the report do).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from pte_rl.cli import CLIError
from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.gamma import DEFAULT_CONTEXT_TOKENS, GAMMA_MODES, GammaResult, resolve_gamma
from pte_rl.pricing.hardware import DEFAULT_PROFILE, HardwareError, HardwareProfile, custom_profile, load_profile
from pte_rl.pricing.resolve import PricingConfig, resolve_pricing


def add_hardware_arguments(parser: argparse.ArgumentParser, *, mode_flag: str = "--mode") -> None:
    """The options that pick the hardware and how gamma is derived from a config."""
    parser.add_argument("--hardware", metavar="NAME",
                        help=f"hardware profile: a name from `pte-rl hardware`, NAME:dense, or a profile JSON "
                             f"file (default {DEFAULT_PROFILE}, the paper's reference)")
    parser.add_argument("--flops", metavar="F", help="user-defined profile: peak FLOP/s (e.g. 989e12 or 989T)")
    parser.add_argument("--bandwidth", metavar="B", help="user-defined profile: memory bandwidth in bytes/s "
                                                         "(e.g. 3.35e12 or 3.35T)")
    parser.add_argument("--active-params", metavar="N",
                        help="active parameters per token (e.g. 3.3e9 or 3.3B); default: estimated from the config")
    parser.add_argument(mode_flag, dest="gamma_mode", choices=GAMMA_MODES, default="paper",
                        help="paper: 2*L*d*(Hkv/Hq)*HOI/N (the paper's); kv_bytes: the KV bytes actually read")
    parser.add_argument("--dtype-bytes", type=int, metavar="N",
                        help="kv_bytes mode: bytes per K/V entry (default: the config's dtype, else 2)")
    parser.add_argument("--context-tokens", type=int, default=DEFAULT_CONTEXT_TOKENS, metavar="N",
                        help=f"kv_bytes mode: context length at which sliding-window layers are priced "
                             f"(default {DEFAULT_CONTEXT_TOKENS})")


def profile_from_args(args: argparse.Namespace) -> HardwareProfile:
    """--hardware NAME, or --flops F --bandwidth B; bad input becomes a CLIError."""
    try:
        if args.flops is not None or args.bandwidth is not None:
            if args.flops is None or args.bandwidth is None:
                raise CLIError("a user-defined profile needs both --flops F and --bandwidth B")
            if args.hardware is not None:
                raise CLIError("give --hardware NAME or --flops F --bandwidth B, not both")
            return custom_profile(args.flops, args.bandwidth)
        return load_profile(args.hardware or DEFAULT_PROFILE)
    except HardwareError as exc:
        raise CLIError(str(exc)) from None


def gamma_from_args(args: argparse.Namespace, config: str | None) -> GammaResult:
    """gamma from a config (or a measured profile) and the hardware options."""
    profile = profile_from_args(args)
    if args.context_tokens <= 0:
        raise CLIError(f"--context-tokens: expected a positive integer, got {args.context_tokens}")
    if args.dtype_bytes is not None and args.dtype_bytes <= 0:
        raise CLIError(f"--dtype-bytes: expected a positive integer, got {args.dtype_bytes}")
    try:
        return resolve_gamma(config, profile, mode=args.gamma_mode, active_params=args.active_params,
                             dtype_bytes=args.dtype_bytes, context_tokens=args.context_tokens)
    except HardwareError as exc:
        raise CLIError(str(exc)) from None


def cost_model_from_args(args: argparse.Namespace) -> tuple[CostModel, dict[str, Any]]:
    """``--gamma G`` or ``--model-config CONFIG`` / ``--hardware`` (+ ``--cache``, ``--attention``,
    ``--delta``) -> ``(CostModel, derivation)`` by :func:`pte_rl.pricing.resolve.resolve_pricing`."""
    formula_options = args.model_config or args.hardware or args.flops or args.bandwidth or args.active_params
    if args.gamma is not None and formula_options:
        raise CLIError("give --gamma G, or --model-config CONFIG with hardware options, not both")
    for name in ("gamma", "delta"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise CLIError(f"--{name}: expected a finite non-negative number, got {value}")
    if args.gamma is None and not (args.model_config or args.hardware):
        raise CLIError("no gamma: give --gamma G, or --model-config CONFIG [--hardware NAME], "
                       "or --hardware PROFILE.json with a measured gamma")
    profile = profile_from_args(args) if args.gamma is None else DEFAULT_PROFILE
    if args.gamma is None and not args.model_config and profile.gamma is None:  # type: ignore[union-attr]
        raise CLIError(f"--hardware {args.hardware} has no measured gamma: give --model-config CONFIG "
                       "to derive one, or --gamma G")
    if args.context_tokens <= 0:
        raise CLIError(f"--context-tokens: expected a positive integer, got {args.context_tokens}")
    if args.dtype_bytes is not None and args.dtype_bytes <= 0:
        raise CLIError(f"--dtype-bytes: expected a positive integer, got {args.dtype_bytes}")
    pricing = PricingConfig(gamma=args.gamma, hardware=profile, mode=args.gamma_mode, cache=args.cache,
                            attention=args.attention, delta=args.delta, active_params=args.active_params,
                            dtype_bytes=args.dtype_bytes, context_tokens=args.context_tokens)
    try:
        return resolve_pricing(pricing, args.model_config, source="command line")
    except HardwareError as exc:
        raise CLIError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gamma",
        help="gamma for a model config on a hardware profile, with its derivation",
        description="Compute gamma (the decode-attention price per cached token, in prefill tokens) from a "
        "Hugging Face config.json (or a model directory) and a hardware profile.",
    )
    parser.add_argument("config", metavar="CONFIG", help="config.json, or a model directory holding one")
    add_hardware_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print gamma and its derivation as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = gamma_from_args(args, args.config)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.describe())
    return 0

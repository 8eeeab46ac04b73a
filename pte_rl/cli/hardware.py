"""`pte-rl hardware`: list the hardware profiles gamma can use, with their figures and sources."""

from __future__ import annotations

import argparse
import json

from pte_rl.pricing.hardware import DEFAULT_PROFILE, HardwareError, list_profiles, load_profile, profile_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hardware",
        help="list hardware profiles (peak FLOP/s, bandwidth, HOI, sources)",
        description="List the hardware profiles: built-in, registered, and saved in the profile directory "
        "($PTE_RL_PROFILE_DIR, default ~/.config/pte-rl/profiles). Use NAME:dense for a dense-peak variant.",
    )
    parser.add_argument("--json", action="store_true", help="print the profiles as JSON")
    parser.set_defaults(func=run)


def _fmt(value: float | None, scale: float, digits: int = 1) -> str:
    return "-" if value is None else f"{value / scale:,.{digits}f}"


def run(args: argparse.Namespace) -> int:
    profiles, broken = [], []
    for name in list_profiles():
        try:
            profiles.append(load_profile(name))
        except HardwareError as exc:  # a bad saved file: listed with its error, the rest still shown
            broken.append((name, str(exc)))
    if args.json:
        print(json.dumps({"default": DEFAULT_PROFILE, "profile_dir": str(profile_dir()),
                          "profiles": [p.to_dict() for p in profiles],
                          "errors": [{"name": n, "error": e} for n, e in broken]}, indent=2))
        return 0
    header = f"{'name':<12} {'TFLOP/s':>9} {'dense':>9} {'TB/s':>6} {'HOI':>7}  source"
    print(header)
    print("-" * len(header))
    for p in profiles:
        hoi = "-" if p.hoi is None else f"{p.hoi:.1f}"
        mark = " *" if p.name == DEFAULT_PROFILE else ""
        print(f"{p.name:<12} {_fmt(p.flops, 1e12):>9} {_fmt(p.dense_flops, 1e12):>9} "
              f"{_fmt(p.bandwidth, 1e12, 3):>6} {hoi:>7}  {p.source}{mark}")
        if p.notes:
            print(f"{'':<12} {'':>9} {'':>9} {'':>6} {'':>7}  note: {p.notes}")
        if p.gamma is not None:
            delta = "" if p.delta is None else f", delta {p.delta:.6g}"
            print(f"{'':<12} measured gamma {p.gamma:.6g}{delta}{f' for {p.model}' if p.model else ''}")
    for name, error in broken:
        print(f"{name:<12} unreadable: {error}")
    print("\n* default (the paper's reference). TFLOP/s: BF16 tensor peak with 2:4 sparsity, the paper's "
          "convention; NAME:dense uses the dense peak. Custom: --flops F --bandwidth B.")
    return 0

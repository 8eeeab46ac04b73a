"""Rebuild the default tiny policy from its seed and compare it with the build that ships with pte_rl.

On the CPU that made the shipped copy the rebuild is bit-identical (same tensors, same tokenizer); on
another CPU the sums round differently and the weights differ, which this script reports with the
largest difference per tensor. It takes as long as a build (about 20 minutes on one thread).

    python benchmarks/verify_shipped_tiny.py                    # rebuild into a temporary directory
    python benchmarks/verify_shipped_tiny.py --keep runs/tiny   # and keep the rebuild there
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def compare(shipped: Path, rebuilt: Path) -> dict:
    """Per-tensor equality and largest absolute difference, and whether the tokenizers are the same."""
    from safetensors.torch import load_file

    a, b = load_file(shipped / "model.safetensors"), load_file(rebuilt / "model.safetensors")
    tensors = {}
    for name in sorted(a.keys() | b.keys()):
        if name not in a or name not in b or a[name].shape != b[name].shape:
            tensors[name] = {"identical": False, "max_abs_diff": None}
            continue
        tensors[name] = {"identical": bool((a[name] == b[name]).all()),
                         "max_abs_diff": float((a[name] - b[name]).abs().max())}
    same_tokenizer = (shipped / "tokenizer.json").read_bytes() == (rebuilt / "tokenizer.json").read_bytes()
    return {"identical": same_tokenizer and all(t["identical"] for t in tensors.values()),
            "tokenizer_identical": same_tokenizer, "tensors": tensors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", default=None, help="build into this directory and keep it")
    parser.add_argument("--out", default=None, help="also write the comparison as JSON")
    args = parser.parse_args(argv)

    from pte_rl.tiny import BUILD_INFO, TinyConfig, build_tiny_policy, shipped_build

    config = TinyConfig()
    shipped = shipped_build(config)
    if shipped is None:
        print("no shipped build matches the default settings; nothing to compare", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(args.keep) if args.keep else Path(scratch) / "tiny"
        rebuilt = build_tiny_policy(config, target, force=True, shipped=False,
                                    log=lambda message: print(message, file=sys.stderr, flush=True))
        result = compare(shipped, rebuilt)
        info = json.loads((rebuilt / BUILD_INFO).read_text())
    result.update({"shipped": shipped.name, "build_seconds": info["build_seconds"],
                   "shipped_build_seconds": json.loads((shipped / BUILD_INFO).read_text())["build_seconds"]})
    worst = max((t["max_abs_diff"] or 0.0) for t in result["tensors"].values())
    print(f"{shipped.name}: rebuilt in {result['build_seconds']} s; "
          + ("bit-identical to the shipped build" if result["identical"]
             else f"differs from the shipped build (largest weight difference {worst:.3g}; "
                  f"tokenizer {'identical' if result['tokenizer_identical'] else 'different'})"))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["identical"] else 2


if __name__ == "__main__":
    sys.exit(main())

"""The ablation runner: train one run per (reward preset, penalty weight, seed), one after another.

Run ``r`` is ``<preset>[-w<weight>]-s<seed>`` and trains with

    PYTHON RECIPE --config CONFIG --reward.preset P --seed S --output_dir OUT/r --run_name r
                  [--reward.overrides.<key> <weight>] [--resume_from_checkpoint OUT/r/checkpoint-N] EXTRA...

(EXTRA: the recipe's own ``--key value`` overrides, dotted for its sections, passed through unchanged.)

A run whose ``eval/summary.json`` exists is complete and skipped; one with a ``checkpoint-N``
directory (the highest N holding ``trainer_state.json``) resumes from it. A weight applies to the
preset's cost-penalty entry: the one entry of the preset's YAML that is neither the ``correctness``
function nor a zero-weight / ``gate: none`` monitor (``pte.weight`` for rewards/pte.yaml);
:data:`WEIGHT_KEYS` covers presets that cannot be read; ``--weight-key PRESET=KEY`` overrides both.
A preset with no penalty (``correctness``) runs once per seed whatever the weights. Runs of the same
seed come together, so a stopped ablation leaves complete comparisons. At the end, ``pte-rl report``
on every complete run writes ``OUT/report``.

Progress goes to stderr and ``OUT/ablate.log``; ``OUT/ablate_status.json`` holds each run's state.
A run directory is locked (``.ablate.lock``, holding host and pid) while it trains, so two runners
(e.g. two W&B sweep agents) never train the same run at once.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pte_rl.errors import InputError
from pte_rl.pricing.jsonl import write_atomic

# Fallback when a preset's YAML cannot be read: preset -> the override key of its penalty weight.
WEIGHT_KEYS = {
    "pte": "pte.weight",
    "tokens": "tokens.weight",
    "tool_calls": "tool_calls.weight",
    "kimi_length": "length.weight",
    "dapo_overlong": "dapo.weight",
}
NO_PENALTY = ("correctness",)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the ablation."""

    preset: str
    seed: int
    weight: float | None = None
    weight_key: str | None = None

    @property
    def name(self) -> str:
        weight = "" if self.weight is None else f"-w{self.weight:g}"
        return f"{Path(self.preset).stem}{weight}-s{self.seed}"

    @property
    def overrides(self) -> tuple[str, ...]:
        return () if self.weight is None else (f"{self.weight_key}={self.weight:g}",)


def penalty_weight_key(preset: str, explicit: dict[str, str] | None = None) -> str | None:
    """The override key of ``preset``'s penalty weight, or None for a preset without a penalty."""
    if explicit and preset in explicit:
        return explicit[preset]
    try:
        import yaml

        from pte_rl.rewards.loader import resolve_preset

        data = yaml.safe_load(resolve_preset(preset).read_text(encoding="utf-8"))
    except (ImportError, ValueError, OSError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("rewards"), dict):
        penalties = [name for name, entry in data["rewards"].items() if _is_penalty(entry)]
        if not penalties:
            return None
        if len(penalties) == 1:
            return f"{penalties[0]}.weight"
        raise InputError(f"preset {preset!r} has several penalty entries {penalties}; say which weight "
                       f"--weights sets with --weight-key {preset}=<entry>.weight")
    if preset in NO_PENALTY:
        return None
    if preset in WEIGHT_KEYS:
        return WEIGHT_KEYS[preset]
    raise InputError(f"preset {preset!r}: cannot tell which weight --weights sets; "
                   f"use --weight-key {preset}=KEY")


def _is_penalty(entry: object) -> bool:
    """A preset entry that shapes the reward beyond correctness: not the correctness function, and not
    a zero-weight or ungated monitor (every preset logs PTE through one, ``pte`` at weight 0)."""
    if not isinstance(entry, dict) or entry.get("function") == "correctness":
        return False
    options_entry = entry.get("options")
    options = options_entry if isinstance(options_entry, dict) else {}
    return entry.get("weight", 1.0) != 0 and options.get("gate") != "none"


def plan_runs(presets: Sequence[str], seeds: Sequence[int], weights: Sequence[float | None] = (),
              weight_keys: dict[str, str] | None = None) -> list[RunSpec]:
    """Every run, seed-major; ``weights`` empty (or a None entry) means the preset's own weight."""
    weighted = any(w is not None for w in weights)
    keys = {p: penalty_weight_key(p, weight_keys) if weighted else None for p in presets}
    specs: list[RunSpec] = []
    for seed in seeds:
        for preset in presets:
            options = list(weights) or [None]
            if keys[preset] is None:
                options = [None]
            for weight in options:
                spec = RunSpec(preset, seed, weight, keys[preset] if weight is not None else None)
                if spec not in specs:
                    specs.append(spec)
    return specs


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The ``checkpoint-N`` directory with the highest N that holds trainer_state.json."""
    found = []
    for path in run_dir.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(suffix), path))
    return max(found)[1] if found else None


def is_complete(run_dir: Path) -> bool:
    return (run_dir / "eval" / "summary.json").is_file()


def recipe_command(spec: RunSpec, *, out: Path, recipe: str, config: str | None, extra: Sequence[str] = (),
                   launcher: Sequence[str] | None = None) -> list[str]:
    """The command line that trains ``spec`` (resuming from its latest checkpoint when there is one)."""
    run_dir = out / spec.name
    command = [*(launcher or [sys.executable]), recipe]
    if config:
        command += ["--config", config]
    command += ["--reward.preset", spec.preset, "--seed", str(spec.seed), "--output_dir", str(run_dir),
                "--run_name", spec.name]
    if spec.weight is not None:
        command += [f"--reward.overrides.{spec.weight_key}", f"{spec.weight:g}"]
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is not None:
        command += ["--resume_from_checkpoint", str(checkpoint)]
    return command + list(extra)


class _Lock:
    """An exclusive marker file; a stale one (its process gone, same host) is taken over."""

    def __init__(self, path: Path):
        self.path, self.held = path, False

    def acquire(self) -> str | None:
        """None when acquired, else who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self.path.read_text(encoding="utf-8").split()
                host, pid = (owner + ["", ""])[:2]
                if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                    self.path.unlink(missing_ok=True)
                    continue
                return f"{host} pid {pid}"
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{socket.gethostname()} {os.getpid()}\n")
            self.held = True
            return None
        return "another runner"

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Progress:
    def __init__(self, out: Path):
        self.log_path = out / "ablate.log"

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        print(f"pte-rl ablate: {line}", file=sys.stderr, flush=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def run_ablation(specs: Sequence[RunSpec], *, out: str | os.PathLike, recipe: str, config: str | None,
                 extra: Sequence[str] = (), launcher: Sequence[str] | None = None, dry_run: bool = False,
                 stop_on_error: bool = False, report: bool = True, baseline: str = "correctness") -> int:
    """Train every run not yet complete, then report; 0 when every run completed, else 1."""
    out = Path(out)
    if dry_run:
        for spec in specs:
            state = "complete, skipped" if is_complete(out / spec.name) else (
                "resumes" if latest_checkpoint(out / spec.name) else "new")
            print(f"# {spec.name}: {state}")
            if not is_complete(out / spec.name):
                print(shlex.join(recipe_command(spec, out=out, recipe=recipe, config=config, extra=extra,
                                                launcher=launcher)))
        return 0
    if not Path(recipe).is_file():
        raise InputError(f"{recipe}: no such recipe script")
    if config and not Path(config).is_file():
        raise InputError(f"{config}: no such config file")
    log = _Progress(out)
    status: dict[str, dict] = {}
    log(f"{len(specs)} runs in {out}: " + ", ".join(s.name for s in specs))
    for index, spec in enumerate(specs, start=1):
        run_dir, tag = out / spec.name, f"[{index}/{len(specs)}] {spec.name}"
        if is_complete(run_dir):
            log(f"{tag}: complete, skipped")
            status[spec.name] = {"state": "complete", "skipped": True}
            continue
        lock = _Lock(run_dir / ".ablate.lock")
        holder = lock.acquire()
        if holder is not None:
            log(f"{tag}: being trained by {holder}, skipped")
            status[spec.name] = {"state": "busy", "holder": holder}
            continue
        try:
            command = recipe_command(spec, out=out, recipe=recipe, config=config, extra=extra,
                                     launcher=launcher)
            verb = "resuming" if "--resume_from_checkpoint" in command else "starting"
            log(f"{tag}: {verb}: {shlex.join(command)}")
            started = time.monotonic()
            returncode = subprocess.run(command, check=False).returncode
            seconds = round(time.monotonic() - started, 1)
        finally:
            lock.release()
        if returncode == 0 and is_complete(run_dir):
            log(f"{tag}: complete in {seconds:.0f} s")
            status[spec.name] = {"state": "complete", "seconds": seconds}
        else:
            why = f"exit status {returncode}" if returncode else "exit status 0 but no eval/summary.json"
            log(f"{tag}: FAILED ({why}) after {seconds:.0f} s")
            status[spec.name] = {"state": "failed", "returncode": returncode, "seconds": seconds}
        write_atomic(out / "ablate_status.json", [json.dumps(status, indent=2) + "\n"])
        if stop_on_error and status[spec.name]["state"] == "failed":
            break
    write_atomic(out / "ablate_status.json", [json.dumps(status, indent=2) + "\n"])
    complete = [out / s.name for s in specs if is_complete(out / s.name)]
    if report and complete:
        from pte_rl.studies.report import build_report

        build_report(complete, out / "report", baseline=baseline)
        log(f"report of {len(complete)} runs: {out / 'report' / 'report.md'}")
    failed = [name for name, s in status.items() if s["state"] != "complete"]
    if failed:
        log(f"not complete: {', '.join(failed)}")
    return 1 if failed or len(complete) < len(specs) else 0

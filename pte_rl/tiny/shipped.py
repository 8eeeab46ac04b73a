"""The shipped copies of the tiny policies: checked, copied into the cache, refreshed from a build.

Building the default policy takes ~10 minutes on two cores (``facts``' 45-75: many times that when other
work shares them), and a build rounds differently on another CPU, so the same settings would train
from another start on another machine. The build of each embedded environment's default settings
(``tiny_config(env)``) therefore ships inside the package: ``arith``'s (``TinyConfig()``) in
``pte_rl/tiny/default/``, ``facts``' in ``pte_rl/tiny/facts/`` (:data:`SHIPPED_ENVS`), each with its
build record (``tiny_build.json``), whose ``files`` entry holds the sha256 of every other file.
:func:`install_shipped` copies one into the cache when the requested settings hash equals its record's
(any other settings build from the seed), checking every hash first and again on the copy;
:func:`ship` refreshes it from a build when the settings change, and :func:`stale_reason` says
whether it is in step with the current settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pte_rl.errors import InputError, PteRlError
from pte_rl.tiny.config import (
    BUILD_INFO,
    BUILD_VERSION,
    TinyConfig,
    is_built,
    settings_hash,
    settings_record,
    tiny_config,
)

SHIPPED_DIR = Path(__file__).resolve().parent / "default"
"""The shipped build of the default environment's (``arith``) default settings, ``TinyConfig()``."""
SHIPPED_FACTS_DIR = Path(__file__).resolve().parent / "facts"
"""The shipped build of ``facts``' default settings, ``tiny_config("facts")``."""
SHIPPED_ENVS = ("arith", "facts")
"""The environments whose default build ships (by name, as ``TinyConfig.env`` holds it)."""
FILES_KEY = "files"
"""The build record's entry: file name -> sha256 of every file of the build but the record itself."""
REFRESH_COMMAND = "pte-rl tiny build && pte-rl tiny ship"
"""What refreshes the shipped copy after a change of the settings, the environment or the build version."""


def shipped_dir(env: str) -> Path | None:
    """Where ``env``'s default build ships, or None for an environment without a shipped copy (one
    given by path, or any but :data:`SHIPPED_ENVS`). Read at call time, so a test can move either."""
    return {"arith": SHIPPED_DIR, "facts": SHIPPED_FACTS_DIR}.get(env)


def refresh_command(env: str = "arith") -> str:
    """What refreshes ``env``'s shipped copy: build its default settings from the seed, then ship them."""
    return REFRESH_COMMAND if env == "arith" else f"pte-rl tiny build --env {env} && pte-rl tiny ship --env {env}"


class ShippedPolicyError(PteRlError):
    """A file of the shipped policy (or of its copy) does not match its recorded sha256: a damaged
    install or checkout, never copied into the cache."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(directory: Path) -> dict[str, str]:
    """Name -> sha256 of every regular file in ``directory`` but the build record (sorted by name)."""
    return {path.name: sha256_file(path) for path in sorted(directory.iterdir())
            if path.is_file() and path.name != BUILD_INFO and not path.name.startswith(".")}


def shipped_record(directory: Path | None = None) -> dict[str, Any] | None:
    """The shipped build record, or None when the package holds no shipped copy."""
    record = (directory or SHIPPED_DIR) / BUILD_INFO
    return json.loads(record.read_text()) if record.is_file() else None


def verify(directory: Path, record: dict[str, Any]) -> None:
    """Raise :class:`ShippedPolicyError` unless every file the record lists has its recorded sha256."""
    recorded = record.get(FILES_KEY)
    if not isinstance(recorded, dict) or not recorded:
        raise ShippedPolicyError(f"{directory / BUILD_INFO}: {FILES_KEY}: expected name -> sha256 of every file "
                                 f"of the build, found {recorded!r}")
    problems = []
    for name, expected in sorted(recorded.items()):
        path = directory / name
        found = sha256_file(path) if path.is_file() else "no such file"
        if found != expected:
            problems.append(f"{path}: expected sha256 {expected}, found {found}")
    if problems:
        raise ShippedPolicyError(
            "the shipped tiny policy does not match its record (a damaged install or checkout): "
            + "; ".join(problems)
            + f". Reinstall pte_rl, or build from the seed with `pte-rl tiny build --force` ({REFRESH_COMMAND}"
            " refreshes the shipped copy from a build)")


def install_shipped(key: str, target: Path, log: Callable[[str], None], env: str = "arith") -> Path | None:
    """Copy ``env``'s shipped policy to ``target`` when its settings hash is ``key``; None when it is
    not, or when ``env`` ships none.

    The shipped files are checked against their hashes before anything is written, copied into a
    staging directory beside ``target``, checked again there, and renamed into place, so ``target``
    holds a complete, verified copy or nothing (as a build is written)."""
    directory = shipped_dir(env)
    if directory is None:
        log(f"tiny policy: no copy ships for the environment {env}; building from the seed")
        return None
    record = shipped_record(directory)
    if record is None:
        log(f"tiny policy: no shipped copy in {directory}; building from the seed")
        return None
    if record.get("settings_hash") != key:
        log(f"tiny policy: the shipped copy is of other settings ({record.get('settings_hash')}, these are {key}); "
            "building from the seed")
        return None
    verify(directory, record)
    _copy_atomically(directory, [BUILD_INFO, *record[FILES_KEY]], target, record)
    log(f"tiny policy: copied the shipped build {key} ({directory}) to {target}")
    return target


def ship(source: Path, destination: Path | None = None, env: str = "arith") -> Path:
    """Make the build in ``source`` ``env``'s shipped copy (default: :func:`shipped_dir`, e.g.
    ``pte_rl/tiny/default/`` for ``arith``); return it.

    ``source`` must be a complete build of ``env``'s current default settings (``tiny_config(env)``).
    Its record gains the sha256 of every file (a record that already lists them is checked first)."""
    if shipped_dir(env) is None:
        raise InputError(f"env: expected one of {', '.join(SHIPPED_ENVS)} (the environments whose default "
                         f"build ships), got {env!r}")
    destination = destination or shipped_dir(env)
    assert destination is not None
    if not is_built(source):
        raise InputError(f"{source}: expected a tiny-policy build ({BUILD_INFO} and config.json); "
                         f"make one with `pte-rl tiny build --env {env}`")
    record = json.loads((source / BUILD_INFO).read_text())
    key = settings_hash(tiny_config(env))
    if record.get("settings_hash") != key:
        raise InputError(f"{source / BUILD_INFO}: settings_hash: expected {key} (the default settings of "
                         f"{env}, tiny_config({env!r})), found {record.get('settings_hash')}; only the default "
                         "build ships")
    if FILES_KEY in record:
        verify(source, record)
    record[FILES_KEY] = file_hashes(source)
    _copy_atomically(source, list(record[FILES_KEY]), destination, record, write_record=True)
    return destination


def stale_reason(config: TinyConfig | None = None, directory: Path | None = None) -> str | None:
    """None when the shipped copy (default: that of ``config.env``) is the build of ``config`` (default
    ``TinyConfig()``), else what differs (settings, build version or the environment's source) and
    the command that refreshes it."""
    config = config or TinyConfig()
    directory = directory or shipped_dir(config.env)
    if directory is None:
        return f"env {config.env}: no copy ships for it (only {', '.join(SHIPPED_ENVS)})"
    record = shipped_record(directory)
    key = settings_hash(config)
    command = refresh_command(config.env)
    if record is None:
        return f"{directory}: no {BUILD_INFO}, no shipped copy; make one with `{command}`"
    if record.get("settings_hash") == key:
        return None
    settings = settings_record(config)
    shipped = record.get("config", {})
    changed = [f"{name}: shipped {shipped.get(name)!r}, now {value!r}" for name, value in settings.items()
               if shipped.get(name) != value]
    if record.get("build_version") != BUILD_VERSION:
        changed.append(f"BUILD_VERSION: shipped {record.get('build_version')}, now {BUILD_VERSION}")
    why = "; ".join(changed) or f"the environment's source ({config.env} and its private helpers) changed"
    return (f"{directory / BUILD_INFO}: settings_hash: expected {key} (settings_hash of {config.env}'s settings), "
            f"found {record.get('settings_hash')}: the shipped copy is stale ({why}). Rebuild and ship it: "
            f"`{command}`, then commit {directory.name}/ under pte_rl/tiny/")


def _copy_atomically(source: Path, names: list[str], target: Path, record: dict[str, Any],
                     write_record: bool = False) -> None:
    """Copy ``names`` from ``source`` (or write ``record`` as the build record) into a staging
    directory beside ``target``, check the hashes there, and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in names:
            shutil.copyfile(source / name, staging / name)
        if write_record:
            (staging / BUILD_INFO).write_text(json.dumps(record, indent=2, default=str) + "\n")
        verify(staging, record)
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

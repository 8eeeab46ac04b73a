"""Where pte_rl looks for things: one search-path helper for presets and environments, and the file
that holds a run's trajectories.

A name is looked up in the directories of an environment variable (``os.pathsep``-separated), then in
the directory that ships with the package; the first file named ``<name><suffix>`` wins.
"""

from __future__ import annotations

import os
from pathlib import Path


def search_dirs(variable: str, builtin: Path) -> list[Path]:
    """The directories of ``$variable``, then ``builtin``."""
    configured = [Path(p) for p in os.environ.get(variable, "").split(os.pathsep) if p]
    return [*configured, builtin]


def available(variable: str, builtin: Path, suffix: str) -> dict[str, Path]:
    """Names -> files over :func:`search_dirs` (earlier directories shadow later ones; files whose
    name starts with ``_`` are private helpers, not entries)."""
    found: dict[str, Path] = {}
    for directory in search_dirs(variable, builtin):
        if directory.is_dir():
            for path in sorted(directory.glob(f"*{suffix}")):
                if not path.name.startswith("_"):
                    found.setdefault(path.stem, path)
    return found


def trajectories_file(directory: Path) -> Path:
    """``directory``'s ``trajectories.jsonl``, else its ``trajectories.jsonl.gz`` (an archived run:
    ``gzip`` leaves that name, and every reader decompresses it), else the plain name (absent)."""
    plain = directory / "trajectories.jsonl"
    archived = directory / "trajectories.jsonl.gz"
    return archived if not plain.exists() and archived.exists() else plain

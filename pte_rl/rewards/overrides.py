"""Preset overrides: ``"key=value"`` strings (values parsed as YAML) or a mapping, applied in order.

    pte.weight=0.5   pte.options.method=budget   rewards.pte.options.cap=4   ordering=free

A key that does not start with ``description`` / ``ordering`` / ``rewards`` is under ``rewards``; a new
entry is created by setting its ``function`` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from pte_rl.rewards.errors import PresetError

TOP_KEYS = ("description", "ordering", "rewards")
ENTRY_KEYS = ("function", "weight", "options")


def parse_overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[tuple[str, Any, str]]:
    """``(key, value, raw)`` per override; ``raw`` is how an error quotes it."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k), v, f"{k}={v}") for k, v in overrides.items()]
    items = [overrides] if isinstance(overrides, str) else list(overrides)
    out = []
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise PresetError(f"override {item!r}", str(item), "expected key=value, e.g. pte.weight=0.5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise PresetError(f"override {item!r}", key.strip(), f"value is not valid YAML ({exc})") from exc
        out.append((key.strip(), value, item))
    return out


def apply_override(data: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set ``key`` (a dotted path) to ``value`` in the preset ``data``."""
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise PresetError(source, key, "expected a dotted path such as pte.weight or pte.options.method")
    if parts[0] not in TOP_KEYS:
        parts = ["rewards", *parts]
    if parts[0] != "rewards":
        if len(parts) != 1:
            raise PresetError(source, key, f"'{parts[0]}' takes a single value")
        data[parts[0]] = value
        return
    if len(parts) < 3:
        raise PresetError(source, key, "expected <reward>.function, <reward>.weight or <reward>.options.<name>")
    entry = _entry(data.setdefault("rewards", {}), parts[1], parts[2], key, source)
    if parts[2] not in ENTRY_KEYS:
        raise PresetError(source, key, f"expected one of {ENTRY_KEYS} under a reward, got {parts[2]!r}")
    if parts[2] != "options":
        if len(parts) != 3:
            raise PresetError(source, key, f"{parts[2]} takes a single value")
        entry[parts[2]] = value
        return
    if len(parts) < 4:
        raise PresetError(source, key, "expected <reward>.options.<name>=<value>")
    target = entry.get("options") or {}
    entry["options"] = target
    for part in parts[3:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise PresetError(source, key, f"{part!r} is not a mapping")
    target[parts[-1]] = value


def _entry(rewards: dict[str, Any], name: str, field: str, key: str, source: str) -> dict[str, Any]:
    if name not in rewards:
        if field != "function":
            raise PresetError(
                source,
                key,
                f"no reward named {name!r} (have: {sorted(rewards)}); create one by setting {name}.function first",
            )
        rewards[name] = {}
    entry = rewards[name]
    if not isinstance(entry, dict):
        raise PresetError(source, key, f"rewards.{name} is not a mapping")
    return entry

"""A preset's data with where it came from, and how its errors find the file line or override to blame.

Below both :mod:`pte_rl.rewards.loader` (which reads and overrides a preset) and
:mod:`pte_rl.rewards.build` (which builds and checks its rewards), so neither imports the other's types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from pte_rl.rewards.errors import PresetError
from pte_rl.rewards.overrides import TOP_KEYS


@dataclass
class Preset:
    """A preset's data with where it came from: what an error needs to name file, line and field."""

    source: str
    text: str
    data: dict[str, Any]
    applied: list[tuple[str, Any, str]] = field(default_factory=list)  # (key, value, raw) per override

    def error(self, path: Sequence[str], expected: str) -> PresetError:
        """A :class:`PresetError` at ``path`` (blamed on the override that set it, if one did)."""
        dotted = ".".join(path)
        for key, _, raw in self.applied:
            full = key if key.split(".")[0] in TOP_KEYS else f"rewards.{key}"
            if full == dotted or full.startswith(dotted + ".") or dotted.startswith(full + "."):
                return PresetError(f"{self.source} (override {raw!r})", dotted, expected)
        if self.applied:
            expected += f" (overrides applied: {[raw for _, _, raw in self.applied]})"
        return PresetError(self.source, dotted, expected, yaml_line(self.text, path))


def yaml_line(text: str, path: Sequence[str]) -> int | None:
    """1-based line of the deepest node of ``path`` found in the YAML text.

    >>> yaml_line("rewards:\\n  pte:\\n    weight: 0.5\\n", ["rewards", "pte", "weight"])
    3
    """
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line

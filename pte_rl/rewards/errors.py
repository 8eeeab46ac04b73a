"""The preset error: every bad preset or override names the file (and line), the field, what was expected."""

from __future__ import annotations

from pte_rl.errors import InputError


class PresetError(InputError):
    """A bad preset or override: names the file (and line), the field, and what was expected."""

    def __init__(self, source: str, field: str, expected: str, line: int | None = None):
        self.source, self.field, self.expected, self.line = source, field, expected, line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: field '{field}': {expected}")

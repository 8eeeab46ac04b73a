"""The root of pte_rl's exceptions for bad input.

Every error that blames the *input* (a log line, a preset, a config field, a command-line value, a
hardware profile) derives from :class:`InputError`. Its message names the file, the line where known,
the field, and what was expected; the command line prints it on one line and exits with status 2; the
recipe does the same before any training starts. Errors that are not the input's fault (a bug, a
crashed engine) are not ``InputError`` and keep their traceback.
"""

from __future__ import annotations


class PteRlError(Exception):
    """Base class of every exception pte_rl raises on purpose."""


class InputError(PteRlError, ValueError):
    """Bad input: the message says where (file:line, field) and what was expected."""


class InputTypeError(InputError, TypeError):
    """Bad input of the wrong type (a list where a string was expected): also a ``TypeError``."""

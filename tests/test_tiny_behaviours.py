"""The result filter of the answer-copy probe in benchmarks/tiny_behaviours.py."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "tiny_behaviours.py"


def _module():
    spec = importlib.util.spec_from_file_location("tiny_behaviours", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_repeats_a_digit_keeps_one_digit_and_doubled_digits_only():
    repeats = _module().repeats_a_digit
    for value in (0, 9, -7, 22, 1122, 2448, 900, 6992):
        assert repeats(value), value
    for value in (10, 83, 515, 121, 4536, -12, 2019):
        assert not repeats(value), value

"""The result filter of the answer-copy probe in benchmarks/tiny_behaviours.py."""

from script_helpers import load_script


def _module():
    return load_script("benchmarks/tiny_behaviours.py", "tiny_behaviours")


def test_repeats_a_digit_keeps_one_digit_and_doubled_digits_only():
    repeats = _module().repeats_a_digit
    for value in (0, 9, -7, 22, 1122, 2448, 900, 6992):
        assert repeats(value), value
    for value in (10, 83, 515, 121, 4536, -12, 2019):
        assert not repeats(value), value

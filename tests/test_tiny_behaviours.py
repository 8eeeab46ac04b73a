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


def test_answer_copies_per_item_counts_every_miss(tmp_path):
    """The per-item probe on a toy build: its misses add up to its accuracy, item by item."""
    import json
    import re

    from test_tiny import FAST

    from pte_rl.tiny.build import build_tiny_policy
    from pte_rl.tiny.config import TinyConfig

    model = build_tiny_policy(TinyConfig(**FAST), tmp_path / "tiny", log=lambda _: None)
    script = load_script("benchmarks/answer_copies_per_item.py", "answer_copies_per_item")
    out = tmp_path / "copies.json"
    result = script.main(["--model", str(model), "--behaviours", "call", "--samples", "2", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    call = result["behaviours"]["call"]
    assert result["items"] == 87 and call["samples"] == 87 * 2
    missed = sum(m["samples"] for m in call["misses"])
    assert call["accuracy"] == 1 - missed / call["samples"]
    assert missed > 0  # an untrained toy policy does not copy
    values = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    for miss in call["misses"]:
        a, op, b = re.fullmatch(r"(\d+)([-+*])(\d+)", miss["item"]).groups()
        assert str(values[op](int(a), int(b))) == miss["value"]  # the item's own value
        assert miss["answered"] != miss["value"] and 1 <= miss["samples"] <= 2, miss

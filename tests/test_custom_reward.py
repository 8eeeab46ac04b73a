"""The "Write your own reward" example of docs/rewards.md, read out of the page and run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pte_rl.rewards import load_preset

DOCS = Path(__file__).resolve().parent.parent / "docs" / "rewards.md"


def _example() -> tuple[str, str]:
    """The module and the preset of the section, exactly as the page shows them."""
    section = DOCS.read_text(encoding="utf-8").split("### Write your own reward", 1)[1].split("\n### ", 1)[0]
    module = re.search(r"```python\n(.*?)```", section, re.S)
    preset = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert module and preset, "docs/rewards.md: the section lost its python or yaml block"
    return module.group(1), preset.group(1)


def test_the_documented_custom_reward_loads_and_scores(tmp_path, monkeypatch):
    module, preset = _example()
    assert 15 <= len(module.strip().splitlines()) <= 20
    (tmp_path / "my_rewards.py").write_text(module)
    (tmp_path / "my_preset.yaml").write_text(preset)
    monkeypatch.syspath_prepend(str(tmp_path))  # outside the repository: found by dotted path only

    def checker(text, truth):
        return text.strip() == truth

    funcs, weights, resolved = load_preset(tmp_path / "my_preset.yaml", checker=checker)
    assert [f.__name__ for f in funcs] == ["correctness", "brevity"] and weights == [1.0, 1.0]
    assert resolved["rewards"]["brevity"]["bounds"] == "unbounded"
    assert resolved["rewards"]["brevity"]["function"] == "my_rewards:brevity"
    assert resolved["ordering_margin"] == 1.0  # correctness alone: the bonus is left out of the margin
    # three answers to "6*7": right in 50 tokens, wrong in 200, right in 300
    say = [[{"role": "assistant", "content": text}] for text in ("42", "41", "42")]
    batch = {
        "prompts": [[{"role": "user", "content": "6*7?"}]] * 3,
        "completions": say,
        "completion_ids": [[7] * 50, [7] * 200, [7] * 300],
        "ground_truth": ["42"] * 3,
    }
    columns = [f(**batch) for f in funcs]
    assert columns[0] == [1.0, 0.0, 1.0]
    assert columns[1] == pytest.approx([0.1 * (1 - 50 / 200), 0.0, 0.0])  # 0.075, then floored at 0
    totals = [sum(w * col[i] for w, col in zip(weights, columns, strict=True)) for i in range(3)]
    assert totals == pytest.approx([1.075, 0.0, 1.0])

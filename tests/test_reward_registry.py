"""What a preset's ``function:`` may name: built-in short names, dotted paths, functions, factories."""

from __future__ import annotations

import pytest

from pte_rl.pricing.cost import CostModel
from pte_rl.rewards import REGISTRY, CorrectnessReward, PresetError, PTEPenalty, load_preset

COST = CostModel(gamma=0.01)

MODULE = '''
def shout(prompts, completions, completion_ids, **kwargs):
    return [1.0 if str(c).isupper() else 0.0 for c in completions]


class Bonus:
    """A configurable reward: options plus the context keys it names (checker; no cost_model)."""

    def __init__(self, amount, checker=None):
        self.amount, self.checker, self.__name__ = amount, checker, "bonus"

    def __call__(self, prompts, completions, completion_ids, **kwargs):
        return [self.amount] * len(completions)

    def bounds(self):
        return (self.amount, self.amount), (self.amount, self.amount)


def make_bonus(amount=0.25, **anything):
    return Bonus(amount)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_rewards_mod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _preset(tmp_path, entry: str, ordering: str = "strict"):
    path = tmp_path / "p.yaml"
    path.write_text(f"ordering: {ordering}\nrewards:\n  c: {{function: correctness}}\n  x:\n{entry}")
    return path


def test_short_names_map_to_the_classes():
    assert REGISTRY["correctness"] is CorrectnessReward and REGISTRY["pte"] is PTEPenalty
    assert set(REGISTRY) == {
        "correctness", "pte", "cost_penalty", "kimi_length", "dapo_overlong", "otc_tool",
        "linear_token_penalty", "linear_call_penalty",
    }


@pytest.mark.parametrize("spec", ["user_rewards_mod:shout", "user_rewards_mod.shout"])
def test_a_plain_function_by_dotted_path(user_module, spec):
    path = _preset(user_module, f"    function: {spec}\n    weight: 0.5\n")
    funcs, weights, resolved = load_preset(path, checker=lambda text, truth: None)
    assert funcs[1].__name__ == "shout" and weights == [1.0, 0.5]
    assert funcs[1](prompts=None, completions=["HI", "hi"], completion_ids=None) == [1.0, 0.0]
    assert resolved["rewards"]["x"]["bounds"] == "unbounded" and resolved["ordering_margin"] == 1.0


def test_a_plain_function_takes_no_options(user_module):
    path = _preset(user_module, "    function: user_rewards_mod:shout\n    options: {loud: true}\n")
    with pytest.raises(PresetError, match="takes no options") as info:
        load_preset(path)
    assert (info.value.field, info.value.line) == ("rewards.x.options", 6)


def test_a_class_gets_its_options_and_the_context_it_names(user_module):
    def checker(text, truth):
        return True

    path = _preset(user_module, "    function: user_rewards_mod.Bonus\n    weight: 2\n    options: {amount: -0.2}\n")
    funcs, _, resolved = load_preset(path, cost_model=COST, checker=checker)
    bonus = funcs[1]
    assert bonus.amount == -0.2 and bonus.checker is checker  # no cost_model: Bonus does not name it
    assert resolved["rewards"]["x"]["bounds"] == {"correct": [-0.2, -0.2], "incorrect": [-0.2, -0.2]}
    assert resolved["ordering_margin"] == pytest.approx(1.0)  # (1 - 0.4) - (0 - 0.4)
    with pytest.raises(PresetError, match="unknown option") as info:
        load_preset(_preset(user_module, "    function: user_rewards_mod:Bonus\n    options: {amont: 1}\n"))
    assert info.value.field == "rewards.x.options.amont"
    # a factory with **kwargs takes any option, and no context it does not name
    funcs, _, _ = load_preset(_preset(user_module, "    function: user_rewards_mod:make_bonus\n"), checker=checker)
    assert funcs[1].amount == 0.25 and funcs[1].checker is None


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("no_such_pkg_xyz.rewards:thing", "cannot import 'no_such_pkg_xyz.rewards'"),
        ("user_rewards_mod:missing", "has no callable 'missing'"),
        ("correctnes", "expected one of"),
    ],
)
def test_bad_function_names_the_file_line_and_field(user_module, spec, expected):
    path = _preset(user_module, f"    function: {spec}\n")
    with pytest.raises(PresetError, match=expected) as info:
        load_preset(path)
    assert (info.value.source, info.value.line, info.value.field) == (str(path), 5, "rewards.x.function")

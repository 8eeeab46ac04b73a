"""Reward presets: every YAML in rewards/ loads, overrides apply, bad presets fail loudly."""

from __future__ import annotations

import pickle

import pytest
import yaml

from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.trajectory import ToolCall, Trajectory, Turn
from pte_rl.rewards import PresetError, available_presets, load_preset
from pte_rl.rewards.loader import BUILTIN_PRESETS_DIR

EXPECTED = {"correctness", "pte", "tokens", "tool_calls", "dapo_overlong", "kimi_length"}
GAMMA = 0.01
COST = CostModel(gamma=GAMMA)


def checker(text, truth):
    return text.strip() == str(truth)


def test_the_repository_ships_the_expected_presets():
    assert set(available_presets()) == EXPECTED
    assert all(path.parent == BUILTIN_PRESETS_DIR for path in available_presets().values())


def _batch():
    """One group of six rollouts: three correct (cheap, medium, costly), three incorrect."""
    shapes = [
        (100, 10, 0, True),
        (100, 40, 1, True),
        (300, 80, 3, True),
        (100, 5, 0, False),
        (200, 30, 2, False),
        (400, 200, 4, False),
    ]
    records = [
        Trajectory([Turn(c, d, tool_calls=[ToolCall("python")] * k)], task_id="t", correct=ok).to_dict()
        for c, d, k, ok in shapes
    ]
    return {
        "prompts": [[{"role": "user", "content": "q"}]] * 6,
        "completions": [[{"role": "assistant", "content": "a"}]] * 6,
        "completion_ids": [[0] * d for _, d, _, _ in shapes],
        "trajectory": records,
        "task_id": ["t"] * 6,
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_preset_loads_runs_and_pickles(name):
    funcs, weights, resolved = load_preset(name, cost_model=COST, checker=checker)
    raw = yaml.safe_load(available_presets()[name].read_text())
    assert weights == [float(entry.get("weight", 1.0)) for entry in raw["rewards"].values()]
    assert list(resolved["rewards"]) == list(raw["rewards"])
    assert resolved["ordering"] == raw.get("ordering", "strict")
    yaml.safe_dump(resolved)  # plain data: saved with the run
    batch = _batch()
    columns = [f(**batch) for f in funcs]
    totals = [sum(w * col[i] for w, col in zip(weights, columns, strict=True)) for i in range(6)]
    if resolved["ordering"] == "strict":
        assert resolved["ordering_margin"] > 0
        assert min(totals[:3]) > max(totals[3:])  # every correct rollout outranks every incorrect one
    clones = pickle.loads(pickle.dumps(funcs))
    assert [c.__name__ for c in clones] == [f.__name__ for f in funcs]


def test_ablation_arms_differ_only_in_the_cost_measure():
    arms = {
        name: load_preset(name, cost_model=COST, checker=checker)[2]["rewards"]
        for name in ("pte", "tokens", "tool_calls", "correctness", "kimi_length")
    }
    for name, rewards in arms.items():
        assert rewards["correctness"] == arms["pte"]["correctness"], name
    pte, tokens = arms["pte"]["pte"], arms["tokens"]["tokens"]
    assert pte["weight"] == tokens["weight"] == arms["tool_calls"]["tool_calls"]["weight"]
    same = ("method", "gate", "combine", "among", "group_by", "group_size")
    assert {k: pte["options"][k] for k in same} == {k: tokens["options"][k] for k in same}
    assert (pte["options"]["cost"], tokens["options"]["cost"]) == ("pte", "generated_tokens")
    # no preset carries a zero-weight monitor or any pricing: the metrics callback logs pte/*
    for name, rewards in arms.items():
        assert all(entry["weight"] > 0 for entry in rewards.values()), name
        assert not any(set(entry["options"]) & {"gamma", "cache", "attention", "delta"} for entry in rewards.values())
    # the OTC arm is success-gated like the PTE arm: incorrect rollouts get 0 from both
    funcs = {
        f.__name__: f for f in load_preset("tool_calls", cost_model=COST)[0] + load_preset("pte", cost_model=COST)[0]
    }
    assert funcs["otc_tool"].bounds() == funcs["pte_penalty"].bounds() == ((-1.0, 0.0), (0.0, 0.0))


def test_overrides_list_and_dict():
    funcs, weights, resolved = load_preset(
        "pte",
        [
            "pte.weight=0.3",
            "pte.options.method=log_budget",
            "pte.options.budget=ema",
            "rewards.pte.options.cap=4",
            "description=tuned",
        ],
        cost_model=COST,
    )
    assert weights == [1.0, 0.3]
    assert (
        resolved["rewards"]["pte"]["options"] | {"method": "log_budget", "budget": "ema", "cap": 4.0}
        == resolved["rewards"]["pte"]["options"]
    )
    assert resolved["description"] == "tuned" and resolved["ordering_margin"] == pytest.approx(0.7)
    assert resolved["overrides"][0] == "pte.weight=0.3"
    _, weights, resolved = load_preset("pte", {"pte.weight": 0.1, "pte.options.gate": "all"}, cost_model=COST)
    assert weights == [1.0, 0.1] and resolved["rewards"]["pte"]["options"]["gate"] == "all"
    # a new entry, created by naming its function first
    funcs, weights, _ = load_preset(
        "correctness",
        ["calls.function=linear_call_penalty", "calls.weight=0.2", "calls.options.coef=0.5"],
        cost_model=COST,
    )
    assert [f.__name__ for f in funcs] == ["correctness", "linear_call_penalty"]
    assert weights == [1.0, 0.2] and funcs[1].coef == 0.5
    # opting out of the ordering guarantee
    _, _, resolved = load_preset("pte", ["pte.weight=1.5", "ordering=free"], cost_model=COST)
    assert resolved["ordering_margin"] == pytest.approx(-0.5)


def test_context_fills_only_what_the_preset_leaves_open(tmp_path):
    funcs, _, _ = load_preset("pte", cost_model=COST, checker=checker)
    assert funcs[0].checker is checker and funcs[1].cost_model is COST
    funcs, _, resolved = load_preset("pte", ["correctness.options.checker=number"], cost_model=COST, checker=checker)
    assert funcs[0].checker is not checker and resolved["rewards"]["correctness"]["options"]["checker"] == "number"


@pytest.mark.parametrize("key", ["gamma", "cache", "attention", "delta"])
def test_pricing_is_not_a_preset_option(tmp_path, key):
    text = f"rewards:\n  c: {{function: correctness}}\n  p:\n    function: pte\n    options:\n      {key}: 1\n"
    path = _write(tmp_path, text)
    with pytest.raises(PresetError, match=f"recipe config's pricing.{key}") as info:
        load_preset(path, cost_model=COST)
    assert (info.value.source, info.value.line, info.value.field) == (str(path), 6, f"rewards.p.options.{key}")
    with pytest.raises(PresetError, match="cost_model= to load_preset") as info:
        load_preset("pte", [f"pte.options.{key}=1"], cost_model=COST)
    assert f"override 'pte.options.{key}=1'" in info.value.source
    with pytest.raises(TypeError, match="gamma"):
        load_preset("pte", gamma=GAMMA)  # type: ignore[call-arg]


def test_lookup_by_path_and_by_directory_variable(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text("rewards:\n  correctness: {function: correctness}\n")
    _, weights, resolved = load_preset(path)
    assert weights == [1.0] and resolved["source"] == str(path)
    monkeypatch.setenv("PTE_RL_REWARDS_DIR", str(tmp_path))
    assert load_preset("mine")[2]["source"] == str(path)
    assert "mine" in available_presets() and "pte" in available_presets()


# ---------------------------------------------------------------- errors name the file, line and field


PTE_ENTRY = (
    "rewards:\n  c: {function: correctness}\n  p:\n    function: pte\n    weight: 0.5\n    options:\n"
    "      cap: 4\n"
)


def _write(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, field, line, expected",
    [
        ("rewards: [1, 2", "<yaml>", 1, "not valid YAML"),
        ("- correctness\n", "<top>", None, "expected a mapping"),
        ("rewardz: {}\n", "rewardz", 1, "unknown key"),
        ("ordering: maybe\nrewards: {c: {function: correctness}}\n", "ordering", 1, "'strict' or 'free'"),
        ("rewards: {}\n", "rewards", 1, "non-empty mapping"),
        ("rewards:\n  c:\n    function: correctnes\n", "rewards.c.function", 3, "expected one of"),
        (
            "rewards:\n  c:\n    function: correctness\n    weight: -1\n",
            "rewards.c.weight",
            4,
            "non-negative",
        ),
        ("rewards:\n  c:\n    function: correctness\n    wieght: 1\n", "rewards.c.wieght", 4, "unknown key"),
        (
            "rewards:\n  c: {function: correctness}\n  p:\n    function: pte\n    options:\n      methd: x\n",
            "rewards.p.options.methd",
            6,
            "unknown option",
        ),
        (PTE_ENTRY + "      method: budget\n", "rewards.p.options.budget", 6, "positive number or 'ema'"),
        (PTE_ENTRY + "      gate: sometimes\n", "rewards.p.options.gate", 8, "gate"),
        (
            "rewards:\n  c: {function: correctness}\n  p: {function: pte, weight: 0.5}\n",
            "rewards.p",
            3,
            "pass cost_model= to load_preset",
        ),
        (
            (
                "rewards:\n  c: {function: correctness}\n"
                "  p: {function: pte, weight: 1.0}\n"
            ),
            "ordering",
            None,
            "set ordering: free",
        ),
        (
            "rewards:\n  a: {function: correctness}\n  b: {function: correctness}\n",
            "rewards",
            1,
            "two reward functions",
        ),
        (
            (
                "rewards:\n  c: {function: correctness}\n"
                "  t: {function: linear_token_penalty, options: {cap: null}}\n"
            ),
            "ordering",
            None,
            "margin -inf",
        ),
    ],
)
def test_bad_presets_are_named_precisely(tmp_path, text, field, line, expected):
    path = _write(tmp_path, text)
    with pytest.raises(PresetError, match=expected) as info:
        load_preset(path, cost_model=None if "cost_model" in expected else COST)
    error = info.value
    assert error.source == str(path) and error.field == field and error.line == line
    assert str(error).startswith(f"{path}:{line}" if line else str(path))


@pytest.mark.parametrize(
    "overrides, field, expected",
    [
        (["pte.weight"], "pte.weight", "key=value"),
        (["ptx.weight=1"], "ptx.weight", "no reward named 'ptx'"),
        (["pte.colour=red"], "pte.colour", "expected one of"),
        (["pte.options=3"], "pte.options", "options.<name>"),
        (["pte.weight=abc"], "rewards.pte.weight", "non-negative number"),
        (["pte.options.method=budget"], "rewards.pte.options.budget", "positive number or 'ema'"),
        (["pte.weight=1"], "ordering", "w < 1"),
        (["pte.options.methd=x"], "rewards.pte.options.methd", "unknown option"),
    ],
)
def test_bad_overrides_are_named(overrides, field, expected):
    with pytest.raises(PresetError, match=expected) as info:
        load_preset("pte", overrides, cost_model=COST)
    assert info.value.field == field
    if field.startswith("rewards.") and field.endswith(overrides[0].split("=")[0]):
        assert f"override {overrides[0]!r}" in info.value.source  # blamed on the override, not the file
    else:
        assert overrides[0] in str(info.value)  # the file's field, with the overrides that led there


def test_unknown_names_and_paths():
    with pytest.raises(PresetError, match=r"available: \[.*'pte'.*\]"):
        load_preset("nope")
    with pytest.raises(PresetError, match="no such preset file"):
        load_preset("missing/preset.yaml")

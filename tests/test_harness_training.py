"""Harness randomisation in training: the family and its draws, per-episode skins in the rollout loop,
a real GRPO step that rolls each group out under its drawn harness, the recipe's ``harness`` section and
its bad input, and the tiny policy's build option that shows its scripted chats in drawn harnesses."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from rollout_helpers import ScriptedBackend, build_byte_tokenizer, one_torch_thread
from script_helpers import load_script
from test_harness import TRAINING_CALL, make_env

from pte_rl.errors import InputError
from pte_rl.rollout.harness import (
    BUILTIN_VARIANTS,
    TRAINING_FAMILY,
    HarnessFamily,
    harness_product,
    make_skin,
)
from pte_rl.rollout.loop import RolloutConfig, TaskInfo, run_rollouts
from pte_rl.tools import execute_calls, parse_tool_calls
from pte_rl.training.sections import HarnessConfig


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_torch_thread()


def test_a_family_draws_one_harness_per_group_the_same_in_every_process():
    family = HarnessFamily(tuple(BUILTIN_VARIANTS[n] for n in TRAINING_FAMILY), seed=3)
    keys = [f"prompt {i}" for i in range(200)]
    drawn = [family.draw(k, step=5) for k in keys]
    # Another process holding the same group, or a resumed run, draws the same harness for it.
    assert drawn == [family.draw(k, step=5, position=f"{p}/{i}") for p, (i, k) in enumerate(enumerate(keys))]
    counts = Counter(h.name for h in drawn)
    assert set(counts) == set(TRAINING_FAMILY) and max(counts.values()) < 50  # 9 members, ~22 each
    # Another step or seed draws again.
    assert [family.draw(k, step=6) for k in keys] != drawn
    per_rollout = HarnessFamily(family.members, per="rollout", seed=3)
    assert len({per_rollout.draw("one prompt", 5, f"0/{i}").name for i in range(40)}) > 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"members": ()}, "expected at least one harness"),
    ({"members": (BUILTIN_VARIANTS["renamed"],), "per": "batch"}, "per: expected group or rollout, got 'batch'"),
    ({"members": (BUILTIN_VARIANTS["renamed"],) * 2}, "harness names must be unique"),
])
def test_a_bad_family_names_the_problem(kwargs, message):
    with pytest.raises(InputError, match=message):
        HarnessFamily(**kwargs)


def test_the_axes_multiply_into_named_harnesses():
    harnesses = harness_product(tool_names=["{name}", "fn_{name}"], argument_names=["{name}", "{tool}_{name}"],
                                syntaxes=[None, "pythonic", "fenced_code"])
    assert len(harnesses) == 12 and len({h.name for h in harnesses}) == 12
    assert harnesses[0].name == "training" and harnesses[0].describe() == {"name": "training"}
    last = harnesses[-1]
    assert last.name == "tools=fn_{name}+args={tool}_{name}+syntax=fenced_code"
    assert (last.tool_name_template, last.argument_name_template, last.syntax) == ("fn_{name}", "{tool}_{name}",
                                                                                   "fenced_code")


def test_the_recipe_section_builds_the_family_or_nothing():
    assert HarnessConfig().build() is None
    family = HarnessConfig(variants=["training_family", "heldout_final"], syntaxes=["pythonic", "fenced_code",
                                                                                   "llama3_json", None],
                           tool_names=["{name}", "fn_{name}"], per="rollout").build()
    # The axes' members that a listed variant already is (the same fields: pythonic, training, ...) join once.
    assert [h.name for h in family.members] == [*TRAINING_FAMILY, "heldout_final",
                                                "tools=fn_{name}+syntax=pythonic", "tools=fn_{name}+syntax=fenced_code",
                                                "tools=fn_{name}+syntax=llama3_json", "tools=fn_{name}"]
    assert family.per == "rollout"
    with pytest.raises(InputError, match="unknown harness variant 'nosuch'"):
        HarnessConfig(variants=["nosuch"]).build()
    with pytest.raises(InputError, match=r"harness.syntaxes: expected a list of strings, got 3"):
        HarnessConfig(syntaxes=[3]).build()
    with pytest.raises(InputError, match="harness variant 'renamed' is given twice"):
        HarnessConfig(variants=["training_family", "renamed"]).build()


def test_each_episode_is_rolled_out_under_its_own_skin():
    """One batch, two harnesses: each episode's prompt, parser, tools, checker and metadata are its own."""
    tokenizer = build_byte_tokenizer()
    env = make_env()
    training, pythonic, final = (make_skin(BUILTIN_VARIANTS[n], env.tools, env.check_answer)
                                 for n in ("training", "pythonic", "heldout_final"))
    base = env.eval_dataset[0]["prompt"]
    prompts = [training.prompt([base[0], {"role": "user", "content": "alpha"}]),
               pythonic.prompt([base[0], {"role": "user", "content": "beta"}]),
               final.prompt([base[0], {"role": "user", "content": "gamma"}])]
    scripts = {"alpha": [TRAINING_CALL, "\\boxed{42}"], "beta": [TRAINING_CALL, '[search(query="tides")]',
                                                                "\\boxed{42}"],
               "gamma": ["\\boxed{42}"]}
    results = run_rollouts(prompts, ScriptedBackend(tokenizer, scripts), tokenizer, env.tools,
                           RolloutConfig(max_turns=4), check_answer=env.check_answer,
                           tasks=[TaskInfo(ground_truth="42")] * 3, skins=[training, pythonic, final])
    alpha, beta, gamma = (r.trajectory for r in results)
    assert [c.error for t in alpha.turns for c in t.tool_calls] == [None]
    assert [c.error for t in beta.turns for c in t.tool_calls] == ["wrong_syntax", None]
    assert alpha.metadata["harness"] == {"name": "training"}
    assert beta.metadata["harness"] == {"name": "pythonic", "syntax": "pythonic"}
    assert "<tools>" in beta.messages[0]["content"] and "<tools>" not in alpha.messages[0]["content"]
    # heldout_final grades only a last "Final answer:" line: a boxed answer is not graded correct.
    assert (alpha.correct, beta.correct, gamma.correct) == (True, True, False)


@pytest.mark.parametrize("name", [*TRAINING_FAMILY, "heldout_names", "heldout_args", "heldout_combo"])
def test_a_scripted_chat_shown_in_a_harness_makes_the_same_real_calls(name):
    """The tiny build's re-skinned chats: every call, read back in the harness's own form, reaches the same
    real tool with the same arguments (and so the same response) as the original call."""
    from pte_rl.envs import arith
    from pte_rl.rollout.env import load_environment

    env = load_environment("arith")
    skin = make_skin(BUILTIN_VARIANTS[name], env.tools, env.check_answer)
    for record in arith.scripted_trajectories(0, 30):
        original, shown = record["messages"], skin.chat(record["messages"])
        assert len(shown) == len(original)
        for before, after in zip(original, shown, strict=True):
            if before["role"] != "assistant" or not before.get("tool_calls"):
                continue
            if "tool_calls" in after:  # Hermes: the template writes the calls
                text = "\n".join(f"<tool_call>{json.dumps(c['function'])}</tool_call>" for c in after["tool_calls"])
            else:
                text = after["content"]
                assert "<tool_call>" not in text
            parsed = parse_tool_calls(text, skin.tools, syntax=skin.harness.syntax)
            assert parsed.errors == [] and len(parsed.calls) == len(before["tool_calls"])
            real = parse_tool_calls("\n".join('<tool_call>' + json.dumps(
                {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}) + '</tool_call>'
                for c in before["tool_calls"]), env.tools)
            assert [o.content for o in execute_calls(parsed, skin.tools)] == \
                [o.content for o in execute_calls(real, env.tools)]
        final = shown[-1]["content"]
        assert skin.check_answer(final, record["ground_truth"]) is True, (name, final)


def test_a_grpo_step_rolls_each_group_out_under_its_drawn_harness(tmp_path, monkeypatch):
    from test_rollout_trl import _scripted_grpo
    from trl import GRPOTrainer

    from pte_rl.pricing.trajectory import Trajectory
    from pte_rl.rollout.trl_driver import make_rollout_func

    tokenizer, model_dir, env, args = _scripted_grpo(tmp_path, monkeypatch)
    family = HarnessFamily((BUILTIN_VARIANTS["training"], BUILTIN_VARIANTS["renamed"]), seed=1)
    seen: list = []

    def correct(prompts, completions, completion_ids, trajectory, **kwargs):
        seen.extend(Trajectory.from_dict(t) for t in trajectory)
        return [1.0 if Trajectory.from_dict(t).correct else 0.0 for t in trajectory]

    rollout = make_rollout_func(env, harness_family=family)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[correct], args=args, train_dataset=env.dataset,
                          processing_class=tokenizer, rollout_func=rollout)
    trainer.train()
    by_task: dict[str, set] = {}
    for trajectory in seen:
        by_task.setdefault(trajectory.task_id, set()).add(trajectory.metadata["harness"]["name"])
    assert all(len(names) == 1 for names in by_task.values())  # a group is compared under one harness
    from pte_rl.rollout.env import prompt_key

    expected = {row["task_id"]: family.draw(prompt_key(row["prompt"]), 0).name for row in env.dataset}
    assert {k: v.pop() for k, v in by_task.items()} == expected
    six = next(t for t in seen if t.task_id == "six-seven")
    # The scripted call names `calculator`: under `renamed` it is an unknown tool, answered with a message.
    first_call = six.turns[0].tool_calls[0].error
    assert first_call == (None if expected["six-seven"] == "training" else "unknown_tool")
    with pytest.raises(ValueError, match="a re-skinned environment or a harness_family"):
        from pte_rl.rollout.harness import reskin

        make_rollout_func(reskin(env, BUILTIN_VARIANTS["renamed"]), harness_family=family)


def test_the_recipe_resolves_the_family_and_rejects_a_bad_one(tmp_path, capsys):
    recipe = load_script("recipes/grpo_pte.py", "grpo_pte_recipe")
    argv = ["--dry_run", "true", "--output_dir", str(tmp_path / "run"), "--report_to", "none"]
    recipe.main([*argv, "--harness.variants", "[training,pythonic]", "--harness.tool_names", "['{name}','fn_{name}']"])
    # The axes' identity member is the listed `training` already: it joins once.
    assert "harness_family:\n  - training\n  - pythonic\n  - tools=fn_{name}\n  launch:" in capsys.readouterr().out
    for extra, message in ((["--harness.variants", "[nosuch]"], "command line (--harness.variants): field 'harness': "
                                                                  "unknown harness variant 'nosuch'"),
                           (["--harness.tool_names", "[x]"], "tools 'calculator' and 'python' would both be named 'x'"),
                           (["--harness.per", "batch", "--harness.variants", "[renamed]"],
                            "per: expected group or rollout, got 'batch'")):
        with pytest.raises(SystemExit) as info:
            recipe.main([*argv, *extra])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_tiny_build_option_shows_each_chat_in_a_drawn_harness():
    from pte_rl.rollout.env import load_environment
    from pte_rl.tiny.config import TinyConfig, settings_hash
    from pte_rl.tiny.data import harness_skins, scripted_texts
    from pte_rl.tiny.model import template_renderer

    plain = TinyConfig()
    config = TinyConfig(harnesses=("training", "pythonic", "renamed", "heldout_final"))
    assert settings_hash(config) != settings_hash(plain)
    assert settings_hash(TinyConfig(harnesses=())) == settings_hash(plain)  # earlier builds keep their key
    env = load_environment("arith")
    skins = harness_skins(config, env)
    texts = scripted_texts(config, 60, 0, env.tool_schemas(), template_renderer(), spans=True, skins=skins)
    by_harness: dict[str, list[str]] = {}
    for example in texts:
        by_harness.setdefault(example["harness"], []).append(example["text"])
    assert set(by_harness) == {"training", "pythonic", "renamed", "heldout_final"}
    called = [t for t in by_harness["pythonic"] if "[calculator(" in t or "[python(" in t]
    assert called and not any("<tool_call>" in t for t in by_harness["pythonic"])
    assert any('"name": "calculator_tool"' in t for t in by_harness["renamed"])
    assert all("Final answer: " in t and "\\boxed{" not in t.split("<|im_start|>assistant")[-1]
               for t in by_harness["heldout_final"])
    assert scripted_texts(config, 60, 0, env.tool_schemas(), template_renderer(), skins=skins) == [
        {**t, "assistant_spans": [], "input_spans": []} for t in texts]  # seeded: the same draws again
    with pytest.raises(InputError, match="unknown harness variant 'nosuch'"):
        harness_skins(TinyConfig(harnesses=("nosuch",)), env)
    with pytest.raises(ValueError, match="TinyConfig.harnesses: expected a tuple of variant names"):
        TinyConfig(harnesses="renamed")  # type: ignore[arg-type]


def test_tiny_path_with_a_bad_harness_exits_2(capsys):
    from pte_rl.cli import main

    assert main(["tiny", "path", "--harnesses", "renamed,nosuch"]) == 2
    assert "unknown harness variant 'nosuch'" in capsys.readouterr().err
    assert main(["tiny", "path", "--harnesses", "training_family"]) == 0
    assert "tiny-" in capsys.readouterr().out


def test_pte_rl_harness_is_a_command(capsys):
    from pte_rl.cli import main

    assert main(["harness", "--list"]) == 0
    assert "heldout_combo" in capsys.readouterr().out
    assert main(["harness", "--variants", "nosuch", "--compare", "a.jsonl"]) == 2

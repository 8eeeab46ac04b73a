"""End to end: `pte-rl rollout` on arith and facts with a tiny local model, then `score` and `patterns`."""

from __future__ import annotations

import json

import pytest
from rollout_helpers import build_byte_tokenizer, build_tiny_model, count_tokens, one_torch_thread

from pte_rl.cli import main
from pte_rl.pricing.cost import pte
from pte_rl.pricing.jsonl import read_trajectories
from pte_rl.rollout.env import load_environment


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model"), build_byte_tokenizer())


@pytest.mark.parametrize(("env", "env_args"), [
    ("facts", ["--env.options.n_cities", "10", "--env.options.n_eval=3"]),
    ("arith", ["--env.options.n_train=10", "--env.name", "arith", "--env.options.n_eval", "3"]),
])
def test_rollout_then_score_and_patterns(model_dir, tmp_path, capsys, env, env_args):
    out = tmp_path / f"{env}.jsonl"
    argv = ["rollout", "--model", str(model_dir), "--env", env, "--n", "2", "--samples", "2", "--engine",
            "transformers", "--device", "cpu", "--max-completion-length", "40", "--temperature", "1.0", "--seed", "3",
            "--out", str(out), *env_args]
    assert main(argv) == 0
    assert "wrote 4 trajectories" in capsys.readouterr().out

    trajectories = read_trajectories(out)
    options = {"facts": {"n_cities": 10, "n_eval": 3}, "arith": {"n_train": 10, "n_eval": 3}}[env]
    environment = load_environment(env, **options)
    rows = environment.eval_dataset.select(range(2))
    assert [t.task_id for t in trajectories] == [r["task_id"] for r in rows for _ in range(2)]
    tokenizer = build_byte_tokenizer()
    for traj, row in zip(trajectories, [r for r in rows for _ in range(2)], strict=True):
        rendered = tokenizer.apply_chat_template(row["prompt"], tools=environment.tool_schemas(), tokenize=False,
                                                 add_generation_prompt=True)
        assert traj.turns[0].context_tokens == count_tokens(rendered)
        assert sum(t.decode_tokens + t.tool_tokens for t in traj.turns) <= 40
        assert traj.ground_truth == row["ground_truth"] and traj.correct in (True, False)
        assert traj.metadata["env"] == env and traj.metadata["stop"] in ("answer", "max_tokens", "max_turns")

    assert main(["score", str(out), "--gamma", "0.001", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trajectories"] == 4
    assert summary["metrics"]["pte/mean"] == pytest.approx(sum(pte(t, 0.001).total for t in trajectories) / 4)
    assert main(["patterns", str(out), "--gamma", "0.001", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in report["trajectories"]] == [t.id for t in trajectories]


def test_rollout_rejects_unknown_environments_and_options(model_dir, tmp_path, capsys):
    assert main(["rollout", "--model", str(model_dir), "--env", "nope", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "unknown environment 'nope'" in capsys.readouterr().err
    assert main(["rollout", "--model", str(model_dir), "--env", "facts", "--env.options.colour", "red",
                 "--out", str(tmp_path / "x.jsonl")]) == 2
    assert ("command line (--env.options.colour): field 'env.options.colour': facts accepts seed, n_cities"
            in capsys.readouterr().err)
    assert main(["rollout", "--model", str(model_dir), "--env", "facts", "--env-arg", "n_eval=3",
                 "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "command line: --env-arg is no longer an option; use --env.options.NAME VALUE" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()

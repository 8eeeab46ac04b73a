"""The rollout loop: exact per-turn accounting, env_mask, stops, tool failures, and the engines.

Every expected count is worked out from the text with :func:`rollout_helpers.count_tokens` (one token
per UTF-8 byte, one per chat marker), independently of the tokenizer and of the loop.
"""

from __future__ import annotations

import threading
import time

import pytest
from rollout_helpers import ScriptedBackend, build_byte_tokenizer, count_tokens, encode

from pte_rl.backends import SamplingConfig
from pte_rl.checkers import NumberChecker
from pte_rl.cost import pte
from pte_rl.jsonl import parse_record, to_record
from pte_rl.rollout import RolloutConfig, TaskInfo, run_rollouts
from pte_rl.tools import Toolset, calculator

SYSTEM = "Answer with a tool."
CALL = '<tool_call>\n{{"name": "calculator", "arguments": {{"expression": "{}"}}}}\n</tool_call>'
GEN_PROMPT = "<|im_start|>assistant\n"


def prompt(question: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def response(content: str, first: bool, last: bool) -> str:
    """One tool message as the Qwen2.5 template renders it after an assistant turn."""
    head = "\n<|im_start|>user" if first else ""
    return f"{head}\n<tool_response>\n{content}\n</tool_response>" + ("<|im_end|>\n" if last else "")


@pytest.fixture(scope="module")
def tokenizer():
    return build_byte_tokenizer()


def rendered_prompt_tokens(tokenizer, messages) -> int:
    schemas = Toolset([calculator]).schemas
    text = tokenizer.apply_chat_template(messages, tools=schemas, tokenize=False, add_generation_prompt=True)
    return count_tokens(text)


def test_multi_turn_accounting_matches_the_token_ids(tokenizer):
    scripts = {
        "6*7": [CALL.format("6*7") + "\n" + CALL.format("2+2"), "The answer is \\boxed{42}"],
        "1+1": ["\\boxed{2}"],
        "3*3": ['<tool_call>\n{"name": "calculator", "arguments": {"expression": "3*3"\n</tool_call>',
                CALL.format("3*3"), "\\boxed{9}"],
    }
    backend = ScriptedBackend(tokenizer, scripts)
    questions = ["What is 6*7?", "What is 1+1?", "What is 3*3?"]
    results = run_rollouts(
        [prompt(q) for q in questions], backend, tokenizer, [calculator], RolloutConfig(max_turns=4),
        check_answer=NumberChecker(), tasks=[TaskInfo("42", "a"), TaskInfo("2", "b"), TaskInfo("9", "c")],
    )
    a, b, c = results
    p = rendered_prompt_tokens(tokenizer, prompt(questions[0]))
    assert len(a.prompt_ids) == p

    # Episode a: two calls in one turn, then the answer.
    suffix = response("42", True, False) + response("4", False, True) + GEN_PROMPT
    d0, d1 = count_tokens(scripts["6*7"][0]) + 1, count_tokens(scripts["6*7"][1]) + 1
    t0 = count_tokens(suffix)
    turns = a.trajectory.turns
    assert [(t.context_tokens, t.decode_tokens, t.tool_tokens) for t in turns] == [(p, d0, t0), (p + d0 + t0, d1, 0)]
    assert [c.response_tokens for c in turns[0].tool_calls] == [
        count_tokens(response("42", True, True)), count_tokens(response("4", False, False))]
    assert [c.output for c in turns[0].tool_calls] == ["42", "4"]
    assert tokenizer.decode(a.completion_ids) == (
        scripts["6*7"][0] + "<|im_end|>" + suffix + scripts["6*7"][1] + "<|im_end|>")
    assert a.env_mask == [1] * d0 + [0] * t0 + [1] * d1
    assert a.logprobs == [-0.25] * d0 + [0.0] * t0 + [-0.25] * d1
    assert a.trajectory.correct is True and a.trajectory.answer == "42"
    assert a.trajectory.metadata["stop"] == "answer"

    # What the engine was fed is what was recorded, turn by turn, over all episodes.
    fed = sorted(len(f) for f in backend.fed)
    recorded = sorted(t.context_tokens for r in results for t in r.trajectory.turns)
    assert fed == recorded
    for r in results:
        model_ids = [i for i, m in zip(r.completion_ids, r.env_mask) if m]
        assert sum(t.decode_tokens for t in r.trajectory.turns) == len(model_ids)
        for t, nxt in zip(r.trajectory.turns, r.trajectory.turns[1:]):
            assert nxt.context_tokens == t.context_tokens + t.decode_tokens + t.tool_tokens

    # Episode b: a direct answer is one turn with no environment tokens.
    assert [(t.context_tokens, t.decode_tokens) for t in b.trajectory.turns] == [(p, count_tokens("\\boxed{2}") + 1)]
    assert b.env_mask == [1] * len(b.completion_ids) and b.trajectory.correct is True

    # Episode c: broken JSON becomes a tool message and an event; the episode goes on.
    first = c.trajectory.turns[0]
    assert [e.kind for e in c.trajectory.events] == ["bad_json"]
    assert first.tool_calls[0].error == "bad_json" and first.tool_calls[0].name == "invalid"
    error_text = first.tool_calls[0].output
    assert error_text.startswith("Error:")
    assert first.tool_tokens == count_tokens(response(error_text, True, True) + GEN_PROMPT)
    assert len(c.trajectory.turns) == 3 and c.trajectory.correct is True

    # PTE of the record equals the paper's formula on the hand counts (evict, gamma = 0.01).
    expected = (p + 0.01 * p * d0) + ((p + d0 + t0) + 0.01 * (p + d0 + t0) * d1)
    assert pte(a.trajectory, 0.01).total == pytest.approx(expected)

    # The interchange format keeps the exact counts.
    for r in results:
        back = parse_record(to_record(r.trajectory))
        assert [(t.context_tokens, t.decode_tokens, t.tool_tokens) for t in back.turns] == [
            (t.context_tokens, t.decode_tokens, t.tool_tokens) for t in r.trajectory.turns]
        assert [[c.response_tokens for c in t.tool_calls] for t in back.turns] == [
            [c.response_tokens for c in t.tool_calls] for t in r.trajectory.turns]
    messages = a.trajectory.messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert messages[2]["content"] == "" and [c["function"]["name"] for c in messages[2]["tool_calls"]] == [
        "calculator", "calculator"]
    assert messages[3]["tool_call_id"] == messages[2]["tool_calls"][0]["id"]


def test_stops_at_max_turns_and_at_the_completion_budget(tokenizer):
    always = [CALL.format("1+1")] * 5
    backend = ScriptedBackend(tokenizer, {"loop": always})
    [r] = run_rollouts([prompt("loop")], backend, tokenizer, [calculator], RolloutConfig(max_turns=2),
                       check_answer=NumberChecker(), tasks=[TaskInfo("2", "t")])
    traj = r.trajectory
    assert len(traj.turns) == 2 and traj.metadata["stop"] == "max_turns" and traj.correct is False
    assert [e.kind for e in traj.events] == ["max_turns"] and traj.events[0].turn == 1
    assert traj.turns[1].tool_calls[0].error == "max_turns" and traj.turns[1].tool_tokens == 0
    assert [m["role"] for m in traj.messages][2:] == ["assistant", "tool", "assistant"]
    assert r.env_mask[-1] == 1  # the last tokens are the model's

    d0 = count_tokens(always[0]) + 1
    t0 = count_tokens(response("2", True, True) + GEN_PROMPT)
    # The budget leaves 5 tokens for turn 2: it is cut there, and the episode ends unfinished.
    backend = ScriptedBackend(tokenizer, {"loop": always})
    [r] = run_rollouts([prompt("loop")], backend, tokenizer, [calculator],
                       RolloutConfig(max_turns=4, max_completion_length=d0 + t0 + 5))
    assert [t.decode_tokens for t in r.trajectory.turns] == [d0, 5]
    assert len(r.completion_ids) == d0 + t0 + 5 and r.trajectory.metadata["stop"] == "max_tokens"
    assert "completion budget" in r.trajectory.events[-1].detail

    # Tool responses that leave no room for one more token are not appended (as in TRL's loop).
    backend = ScriptedBackend(tokenizer, {"loop": always})
    [r] = run_rollouts([prompt("loop")], backend, tokenizer, [calculator],
                       RolloutConfig(max_turns=4, max_completion_length=d0 + t0))
    assert len(r.completion_ids) == d0 and r.env_mask == [1] * d0
    assert r.trajectory.turns[0].tool_tokens == 0 and r.trajectory.turns[0].tool_calls[0].output == "2"
    assert [e.kind for e in r.trajectory.events] == ["max_tokens"]

    # A per-turn cap cuts the turn and says so.
    backend = ScriptedBackend(tokenizer, {"loop": always})
    [r] = run_rollouts([prompt("loop")], backend, tokenizer, [calculator],
                       RolloutConfig(max_turns=4, max_tokens_per_turn=7))
    assert [t.decode_tokens for t in r.trajectory.turns] == [7]
    assert "token limit of the turn" in r.trajectory.events[-1].detail


_release = threading.Event()


def hang(seconds: int) -> str:
    """Wait a long time.

    Args:
        seconds: how long.
    """
    _release.wait(seconds)
    return "late"


def crash(reason: str) -> str:
    """Fail.

    Args:
        reason: why.
    """
    raise RuntimeError(reason)


def flood(size: int) -> str:
    """Return a lot of text.

    Args:
        size: characters.
    """
    return "x" * size


def test_a_training_loop_survives_tools_that_hang_crash_and_flood(tokenizer):
    calls = "\n".join([
        '<tool_call>\n{"name": "hang", "arguments": {"seconds": 60}}\n</tool_call>',
        '<tool_call>\n{"name": "crash", "arguments": {"reason": "boom"}}\n</tool_call>',
        '<tool_call>\n{"name": "flood", "arguments": {"size": 5000000}}\n</tool_call>',
    ])
    config = RolloutConfig(max_turns=3, max_completion_length=4096, tool_timeout_s=0.5, max_tool_output_chars=1000)
    try:
        for step in range(3):  # a training loop: several batches in a row, each must come back
            backend = ScriptedBackend(tokenizer, {f"q{k}": [calls, "\\boxed{1}"] for k in range(4)})
            start = time.monotonic()
            results = run_rollouts([prompt(f"q{k}") for k in range(4)], backend, tokenizer, [hang, crash, flood],
                                   config, check_answer=NumberChecker(), tasks=[TaskInfo("1", f"q{k}") for k in range(4)])
            assert time.monotonic() - start < 10, "a hung tool must not hold the batch past its timeout"
            for r in results:
                traj = r.trajectory
                assert traj.correct is True and len(traj.turns) == 2
                errors = [(c.name, c.error) for c in traj.turns[0].tool_calls]
                assert errors == [("hang", "timeout"), ("crash", "exception"), ("flood", None)]
                kinds = sorted((e.kind, e.tool) for e in traj.events)
                assert kinds == [("tool_error", "crash"), ("tool_error", "hang"), ("truncated_output", "flood")]
                flooded = traj.turns[0].tool_calls[2].output
                assert len(flooded) < 1200 and "truncated" in flooded
                assert traj.turns[0].tool_tokens < 1500
    finally:
        _release.set()


def test_transformers_backend_limits_and_logprobs_match_a_forward_pass(tokenizer, tmp_path):
    import torch
    from rollout_helpers import build_tiny_model
    from transformers import AutoModelForCausalLM

    from pte_rl.backends import TransformersBackend

    directory = build_tiny_model(tmp_path, tokenizer)
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    backend = TransformersBackend(model, tokenizer)
    prompts = [encode(tokenizer, "hello there"), encode(tokenizer, "a much longer prompt than the first one"),
               encode(tokenizer, "x")]
    torch.manual_seed(0)
    sampling = SamplingConfig(temperature=0.7)
    generations = backend.generate(prompts, [3, 9, 6], sampling)
    for prompt_ids, limit, gen in zip(prompts, [3, 9, 6], generations):
        assert 1 <= len(gen.token_ids) <= limit
        assert gen.finished == (gen.token_ids[-1] == tokenizer.eos_token_id)
        if not gen.finished:
            assert len(gen.token_ids) == limit
        full = torch.tensor([prompt_ids + gen.token_ids])
        with torch.no_grad():
            logits = model(full).logits[0, len(prompt_ids) - 1: -1].float()
        expected = torch.log_softmax(logits / 0.7, -1).gather(1, torch.tensor(gen.token_ids)[:, None]).squeeze(1)
        assert gen.logprobs == pytest.approx(expected.tolist(), abs=1e-4)
        assert gen.cached_tokens == 0 and gen.batch_size == 3

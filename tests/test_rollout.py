"""The rollout loop: exact per-turn accounting, env_mask, stops, tool failures, and the engines.

Every expected count is worked out from the text with :func:`rollout_helpers.count_tokens` (one token
per UTF-8 byte, one per chat marker), independently of the tokenizer and of the loop.
"""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest
from rollout_helpers import ScriptedBackend, build_byte_tokenizer, count_tokens, encode, one_torch_thread

from pte_rl.checkers import NumberChecker
from pte_rl.pricing.cost import pte
from pte_rl.pricing.jsonl import parse_record, to_record
from pte_rl.rollout.backends import SamplingConfig
from pte_rl.rollout.loop import RolloutConfig, TaskInfo, run_rollouts
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


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_torch_thread()


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
        model_ids = [i for i, m in zip(r.completion_ids, r.env_mask, strict=True) if m]
        assert sum(t.decode_tokens for t in r.trajectory.turns) == len(model_ids)
        for t, nxt in pairwise(r.trajectory.turns):
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
    calls = (
        '<tool_call>\n{"name": "hang", "arguments": {"seconds": 60}}\n</tool_call>\n'
        '<tool_call>\n{"name": "crash", "arguments": {"reason": "boom"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "flood", "arguments": {"size": 2000000}}\n</tool_call>'
    )
    config = RolloutConfig(max_turns=3, max_completion_length=4096, tool_timeout_s=2.0, max_tool_output_chars=1000)
    try:
        for _ in range(3):  # a training loop: several batches in a row, each must come back
            backend = ScriptedBackend(tokenizer, {f"q{k}": [calls, "\\boxed{1}"] for k in range(4)})
            start = time.monotonic()
            results = run_rollouts(
                [prompt(f"q{k}") for k in range(4)], backend, tokenizer, [hang, crash, flood], config,
                check_answer=NumberChecker(), tasks=[TaskInfo("1", f"q{k}") for k in range(4)],
            )
            assert time.monotonic() - start < 20, "a hung tool must not hold the batch past its timeout"
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

    from pte_rl.rollout.backends import TransformersBackend

    directory = build_tiny_model(tmp_path, tokenizer)
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    backend = TransformersBackend(model, tokenizer)
    prompts = [encode(tokenizer, "hello there"), encode(tokenizer, "a much longer prompt than the first one"),
               encode(tokenizer, "x")]
    torch.manual_seed(0)
    sampling = SamplingConfig(temperature=0.7)
    generations = backend.generate(prompts, [3, 9, 6], sampling)
    for prompt_ids, limit, gen in zip(prompts, [3, 9, 6], generations, strict=True):
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


def test_a_real_model_rolls_out_multi_turn_with_exact_accounting(tokenizer, tmp_path):
    """A tiny random Qwen2 made to emit scripted turns (its logits are real; the tokens are forced)."""
    import torch
    from rollout_helpers import ForceScript, build_tiny_model
    from transformers import AutoModelForCausalLM

    from pte_rl.rollout.backends import TransformersBackend

    scripts = {"6*7": [CALL.format("6*7"), "\\boxed{42}"], "9-2": ["\\boxed{7}"]}
    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path, tokenizer)).eval()
    backend = TransformersBackend(model, tokenizer, logits_processors=[ForceScript(tokenizer, scripts)])
    torch.manual_seed(0)
    config = RolloutConfig(max_turns=3, max_completion_length=256, sampling=SamplingConfig(temperature=1.0))
    a, b = run_rollouts([prompt("What is 6*7?"), prompt("What is 9-2?")], backend, tokenizer, [calculator], config,
                        check_answer=NumberChecker(), tasks=[TaskInfo("42", "a"), TaskInfo("7", "b")])
    p = rendered_prompt_tokens(tokenizer, prompt("What is 6*7?"))
    d0, d1 = count_tokens(scripts["6*7"][0]) + 1, count_tokens(scripts["6*7"][1]) + 1
    t0 = count_tokens(response("42", True, True) + GEN_PROMPT)
    assert [(t.context_tokens, t.decode_tokens, t.tool_tokens) for t in a.trajectory.turns] == [
        (p, d0, t0), (p + d0 + t0, d1, 0)]
    assert a.env_mask == [1] * d0 + [0] * t0 + [1] * d1
    assert [i for i, m in zip(a.completion_ids, a.env_mask, strict=True) if m] == (
        encode(tokenizer, scripts["6*7"][0]) + [tokenizer.eos_token_id] + encode(tokenizer, "\\boxed{42}")
        + [tokenizer.eos_token_id])
    assert a.trajectory.correct is True and b.trajectory.correct is True
    assert a.trajectory.metadata["batch_sizes"] == [2, 1]
    # The recorded log-probabilities are the model's own at the forced tokens (TRL's convention, T = 1).
    full = torch.tensor([a.prompt_ids + a.completion_ids])
    with torch.no_grad():
        logits = model(full).logits[0, len(a.prompt_ids) - 1: -1]
    expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(a.completion_ids)[:, None]).squeeze(1)
    model_positions = [k for k, m in enumerate(a.env_mask) if m]
    assert [a.logprobs[k] for k in model_positions] == pytest.approx(expected[model_positions].tolist(), abs=1e-4)
    assert all(a.logprobs[k] == 0.0 for k, m in enumerate(a.env_mask) if not m)
    assert all(t.prefill_time_s is not None and t.decode_time_s is not None for t in a.trajectory.turns)


class _Logprob:
    def __init__(self, logprob: float):
        self.logprob, self.rank = logprob, 1


class _Completion:
    def __init__(self, token_ids, logprobs, finish_reason):
        self.token_ids, self.logprobs, self.finish_reason = token_ids, logprobs, finish_reason


class _RequestOutput:
    def __init__(self, prompt_token_ids, completion, num_cached_tokens):
        self.prompt_token_ids, self.outputs, self.num_cached_tokens = prompt_token_ids, [completion], num_cached_tokens


class FakeLLM:
    """``vllm.LLM.generate``'s interface, with an automatic prefix cache of 16-token blocks."""

    block = 16

    def __init__(self, tokenizer, scripts):
        self.scripted = ScriptedBackend(tokenizer, scripts)
        self.seen: list[list[int]] = []
        self.params: list[dict] = []

    def _cached(self, ids: list[int]) -> int:
        best = 0
        for seq in self.seen:
            n = 0
            while n < min(len(seq), len(ids) - 1) and seq[n] == ids[n]:
                n += 1
            best = max(best, n)
        return best // self.block * self.block

    def generate(self, prompts, sampling_params, use_tqdm=False):
        outputs = []
        for request, params in zip(prompts, sampling_params, strict=True):
            ids = request["prompt_token_ids"]
            self.params.append(params)
            gen = self.scripted.generate([ids], [params["max_tokens"]], None)[0]
            cached = self._cached(ids)
            outputs.append(_RequestOutput(ids, _Completion(gen.token_ids, [{t: _Logprob(-0.5)} for t in gen.token_ids],
                                                           "stop" if gen.finished else "length"), cached))
            self.seen.append(ids + gen.token_ids)
        return outputs


def test_vllm_backend_records_the_engines_cached_prefix(tokenizer):
    from pte_rl.rollout.backends import VLLMBackend

    scripts = {"6*7": [CALL.format("6*7"), "\\boxed{42}"]}
    llm = FakeLLM(tokenizer, scripts)
    backend = VLLMBackend(llm, {tokenizer.eos_token_id}, max_context=8192, sampling_params_factory=dict)
    [r] = run_rollouts([prompt("What is 6*7?")], backend, tokenizer, [calculator],
                       RolloutConfig(max_turns=3, max_completion_length=300, sampling=SamplingConfig(temperature=0.5)),
                       check_answer=NumberChecker(), tasks=[TaskInfo("42", "a")])
    turns = r.trajectory.turns
    c0, d0 = turns[0].context_tokens, turns[0].decode_tokens
    assert [t.cached_tokens for t in turns] == [0, (c0 + d0) // 16 * 16]
    assert r.logprobs[:d0] == [-0.5] * d0
    assert [p["max_tokens"] for p in llm.params] == [300, 300 - d0 - turns[0].tool_tokens]
    assert llm.params[0]["temperature"] == 0.5 and llm.params[0]["logprobs"] == 0 and llm.params[0]["top_k"] == -1
    # "measured" prices what the engine did not serve from its cache.
    gamma = 0.001
    expected = sum(t.context_tokens - t.cached_tokens + gamma * t.context_tokens * t.decode_tokens for t in turns)
    assert pte(r.trajectory, gamma, cache="measured").total == pytest.approx(expected)


class FakeClient:
    """TRL VLLMClient.generate's interface."""

    def __init__(self):
        self.requests = []

    def generate(self, prompts, n, repetition_penalty, temperature, top_p, top_k, min_p, max_tokens, logprobs):
        self.requests.append((len(prompts), max_tokens))
        ids = [[len(p) % 7 + k for k in range(max_tokens - 1)] + [99] for p in prompts]
        return {"prompt_ids": prompts, "completion_ids": ids,
                "logprobs": [[[-0.1 * (k + 1)] for k in range(len(i))] for i in ids]}


def test_server_backend_groups_requests_by_token_limit_and_keeps_order():
    from pte_rl.rollout.backends import VLLMServerBackend

    client = FakeClient()
    backend = VLLMServerBackend(client, eos_ids={99})
    prompts = [[1, 2, 3], [1, 2], [5, 5, 5, 5]]
    gens = backend.generate(prompts, [4, 2, 4], SamplingConfig())
    assert sorted(client.requests) == [(1, 2), (2, 4)]
    assert [g.token_ids for g in gens] == [[3, 4, 5, 99], [2, 99], [4, 5, 6, 99]]
    assert gens[1].logprobs == pytest.approx([-0.1, -0.2]) and all(g.finished for g in gens)
    assert all(g.cached_tokens is None for g in gens)


def test_rollout_func_maps_prompts_to_rows_and_pickles():
    import pickle

    from pte_rl.rollout.env import load_environment, prompt_key
    from pte_rl.rollout.trl_driver import make_rollout_func

    env = load_environment("facts", n_cities=10, n_eval=5)
    func = make_rollout_func(env, max_turns=3)
    row = env.eval_dataset[0]
    assert func.task_index[prompt_key(row["prompt"])].task_id == row["task_id"]
    clone = pickle.loads(pickle.dumps(func))
    assert clone.max_turns == 3 and [t.__name__ for t in clone.tools] == ["search", "visit"]
    assert len(clone.task_index) == len(env.dataset) + len(env.eval_dataset)

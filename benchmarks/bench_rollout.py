"""Benchmark the rollout loop: its own overhead against generation time, and concurrent tool calls.

    python benchmarks/bench_rollout.py [--episodes 8] [--hidden 256] [--layers 4] [--out bench_rollout.json]

1. Overhead. A small random Qwen2 generates on CPU through :class:`pte_rl.rollout.backends.TransformersBackend`;
   its outputs are replaced by scripted turns (two calculator calls, then an answer) so that every
   episode runs the full loop: decode, parse, execute, render the suffix through the chat template,
   tokenise, bookkeeping, grading. The model decodes exactly as many tokens as each scripted turn has,
   so generation costs what it would. Reported::

       overhead share = (loop wall time - generation wall time - tool wall time) / generation wall time

   where tool wall time is the union of the intervals in which calls were executing (tools excluded,
   as the target says; the calculator takes microseconds anyway). Target: under 5%.
2. Concurrency. Four calls of a 0.5 s tool in one turn, and one such call in each of four episodes:
   the turn's tool phase should take about 0.5 s, not 2 s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pte_rl import tools as tools_module
from pte_rl.checkers import NumberChecker
from pte_rl.rollout.backends import Generation, SamplingConfig, TransformersBackend
from pte_rl.rollout.loop import RolloutConfig, TaskInfo, run_rollouts
from pte_rl.tools import calculator

CALL = '<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


def byte_tokenizer():
    """One token per UTF-8 byte plus the chat markers, with TRL's Qwen2.5 chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_chat_template

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    backend.add_tokens([AddedToken(t, normalized=False, special=False)
                        for t in ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer


class ScriptedModelBackend:
    """Real generation (same token counts) whose outputs are replaced by scripted turns."""

    def __init__(self, inner: TransformersBackend, tokenizer, scripts: dict[str, list[str]]):
        self.inner, self.tokenizer = inner, tokenizer
        self.eos_ids, self.max_context = inner.eos_ids, inner.max_context
        self.scripts = {k: [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in v]
                        for k, v in scripts.items()}
        self.turn: dict[str, int] = {}
        self.generation_s = 0.0

    def any_active(self, local_active: bool) -> bool:
        return local_active

    def generate(self, prompts, max_tokens, sampling):
        wanted = []
        for prompt in prompts:
            key = next(k for k in self.scripts if k in self.tokenizer.decode(prompt))
            turn = self.turn.get(key, 0)
            self.turn[key] = turn + 1
            wanted.append(self.scripts[key][turn])
        start = time.perf_counter()
        real = self.inner.generate(prompts, [len(w) for w in wanted], sampling)
        self.generation_s += time.perf_counter() - start
        decoded = [len(r.token_ids) for r in real]
        return [Generation(w, [0.0] * len(w), True, cached_tokens=0, batch_size=len(prompts), generation_time_s=d)
                for w, d in zip(wanted, decoded, strict=True)]


class ToolClock:
    """Wraps pte_rl.tools.execute_calls and measures the union of the intervals in which tools ran."""

    def __init__(self):
        self.original = tools_module.execute_calls
        self.intervals: list[tuple[float, float]] = []

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.original(*args, **kwargs)
        finally:
            self.intervals.append((start, time.perf_counter()))

    def wall(self) -> float:
        total, end = 0.0, float("-inf")
        for a, b in sorted(self.intervals):
            if b > end:
                total += b - max(a, end)
                end = b
        return total


def overhead(episodes: int, hidden: int, layers: int, repeats: int) -> dict:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = byte_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 4,
                         num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                         num_key_value_heads=max(1, hidden // 128),
                         max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = Qwen2ForCausalLM(config).eval()
    n_params = sum(p.numel() for p in model.parameters())
    questions = [f"What is {11 + k}*{23 + k}?" for k in range(episodes)]
    scripts = {
        q: ["Let me compute. " + CALL.format(name="calculator", arguments=json.dumps({"expression": q[8:-1]}))
            + "\n" + CALL.format(name="calculator", arguments=json.dumps({"expression": q[8:-1] + "+0"})),
            f"The answer is \\boxed{{{eval(q[8:-1])}}}."]
        for q in questions
    }
    prompts = [[{"role": "system", "content": "Use the calculator."}, {"role": "user", "content": q}]
               for q in questions]
    tasks = [TaskInfo(str(eval(q[8:-1])), q) for q in questions]
    runs = []
    for _ in range(repeats):
        backend = ScriptedModelBackend(TransformersBackend(model, tokenizer), tokenizer, scripts)
        clock = ToolClock()
        tools_module.execute_calls = clock
        try:
            start = time.perf_counter()
            results = run_rollouts(prompts, backend, tokenizer, [calculator],
                                   RolloutConfig(max_turns=3, max_completion_length=1024,
                                                 sampling=SamplingConfig(temperature=1.0)),
                                   check_answer=NumberChecker(), tasks=tasks)
            total = time.perf_counter() - start
        finally:
            tools_module.execute_calls = clock.original
        assert all(r.trajectory.correct for r in results)
        loop = total - backend.generation_s - clock.wall()
        runs.append({"total_s": total, "generation_s": backend.generation_s, "tools_s": clock.wall(), "loop_s": loop,
                     "overhead_share": loop / backend.generation_s})
    best = min(runs, key=lambda r: r["overhead_share"])
    tokens = sum(t.decode_tokens for r in results for t in r.trajectory.turns)
    return {"episodes": episodes, "model_parameters": n_params, "decoded_tokens": tokens,
            "runs": runs, "median_overhead_share": sorted(r["overhead_share"] for r in runs)[len(runs) // 2],
            "best": best}


def sleep_tool(seconds: float) -> str:
    """Sleep, then say so.

    Args:
        seconds: how long to sleep.
    """
    time.sleep(seconds)
    return f"slept {seconds}"


class _Scripted:
    """A generation backend that returns scripted texts (no model): for timing the tool phase alone."""

    def __init__(self, tokenizer, texts: dict[str, list[str]]):
        self.tokenizer, self.texts, self.turn = tokenizer, texts, {}
        self.eos_ids, self.max_context = {tokenizer.eos_token_id}, None

    def any_active(self, local_active):
        return local_active

    def generate(self, prompts, max_tokens, sampling):
        out = []
        for prompt in prompts:
            key = next(k for k in self.texts if k in self.tokenizer.decode(prompt))
            turn = self.turn.get(key, 0)
            self.turn[key] = turn + 1
            ids = self.tokenizer(self.texts[key][turn], add_special_tokens=False)["input_ids"]
            ids = ids + [self.tokenizer.eos_token_id]
            out.append(Generation(ids, [0.0] * len(ids), True))
        return out


def concurrency(seconds: float = 0.5) -> dict:
    tokenizer = byte_tokenizer()
    call = CALL.format(name="sleep_tool", arguments=json.dumps({"seconds": seconds}))
    out = {}
    for label, texts in (
        ("4_calls_in_one_turn", {"q0": ["\n".join([call] * 4), "\\boxed{1}"]}),
        ("1_call_in_each_of_4_episodes", {f"q{k}": [call, "\\boxed{1}"] for k in range(4)}),
    ):
        clock = ToolClock()
        tools_module.execute_calls = clock
        try:
            results = run_rollouts([[{"role": "user", "content": k}] for k in texts], _Scripted(tokenizer, texts),
                                   tokenizer, [sleep_tool], RolloutConfig(max_turns=2, max_completion_length=2048))
        finally:
            tools_module.execute_calls = clock.original
        durations = [c.duration_s for r in results for c in r.trajectory.turns[0].tool_calls]
        out[label] = {"calls": len(durations), "tool_seconds_each": seconds, "serial_s": sum(durations),
                      "tool_phase_wall_s": clock.wall()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default="bench_rollout.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"overhead": overhead(args.episodes, args.hidden, args.layers, args.repeats), "concurrency": concurrency()}
    o = result["overhead"]
    print(f"loop overhead: {o['model_parameters'] / 1e6:.2f}M-parameter Qwen2 on CPU, "
          f"{o['episodes']} episodes x 2 turns, {o['decoded_tokens']} decoded tokens")
    for r in o["runs"]:
        print(f"  total {r['total_s']:.2f} s = generation {r['generation_s']:.2f} s + tools {r['tools_s']:.3f} s "
              f"+ loop {r['loop_s']:.3f} s  -> overhead {100 * r['overhead_share']:.2f}% of generation")
    print(f"  median overhead: {100 * o['median_overhead_share']:.2f}% (target < 5%)")
    for label, c in result["concurrency"].items():
        print(f"concurrency, {label}: {c['calls']} x {c['tool_seconds_each']} s tool -> tool phase "
              f"{c['tool_phase_wall_s']:.2f} s (serial would be {c['serial_s']:.2f} s)")
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

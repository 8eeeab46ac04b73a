"""What the tiny policy does before any GRPO: behaviour shares, accuracy, PTE and generated tokens.

Samples the warm-started tiny policy on held-out `arith` items with pte_rl's own rollout loop (the
one GRPO uses), at the GRPO sampling temperature, and labels every trajectory with
``classify_behaviour``. Prints, per behaviour and per item class (easy = level 1, hard = levels >= 2):
share, accuracy, mean PTE and mean generated tokens; plus the scripted costs of each behaviour (the
same chats the warm start saw, priced through the chat template), and the PTE a perfectly efficient
policy would reach on the same items (``ideal``), i.e. the cut GRPO can at most make.

Before sampling it measures whether the policy copies numbers, which every path needs: teacher-forced
on the scripted chats of held-out items, the share of digits predicted right (argmax) where they are
copied, in the tool-call arguments (copied from the question) and in the final answer (copied from the
last tool response, or from the question for ``direct``). Chance is about 0.10; a policy that copies
is near 1.0. A second probe samples the answer of hard items after every earlier turn is forced (up to
``\\boxed{``), per level and behaviour, at each temperature: the copy as the evaluation sees it.
``--answer-repeated`` limits it to results that have one digit or repeat one (where GRPO without a KL
anchor was seen to break copies). ``--copy-only`` stops after these probes.

    .venv/bin/python benchmarks/tiny_behaviours.py [--model DIR] [--temperature 1.0] [--n 100]
        [--samples 4] [--gamma 0.005] [--answer-items 40] [--answer-samples 4] [--answer-repeated]
        [--copy-only] [--out benchmarks/results/tiny_behaviours.json]

Without ``--model`` it builds (or reuses) the default tiny policy and reports the build time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scripted_costs(module, env, tokenizer, gamma: float) -> dict:
    """PTE and generated tokens of every scripted behaviour on a few held-out items (exact, no sampling)."""
    from pte_rl.pricing.cost import pte
    from pte_rl.pricing.jsonl import TemplateCounter, parse_record

    counter = TemplateCounter(tokenizer)
    rows = env.eval_dataset
    table: dict = defaultdict(lambda: {"pte": [], "tokens": []})
    for index in range(min(20, len(rows))):
        problem = module.Problem.parse(rows[index]["expression"], rows[index]["level"])
        for behaviour in module.BEHAVIOURS:
            if behaviour == "direct" and problem.needs_tool:
                continue
            messages = module.script(problem, behaviour, report_lines=_report_lines(env))
            trajectory = parse_record({"messages": messages, "tools": env.tool_schemas()}, counter=counter)
            key = f"{'hard' if problem.needs_tool else 'easy'}/{behaviour}"
            table[key]["pte"].append(pte(trajectory, gamma).total)
            table[key]["tokens"].append(trajectory.decode_tokens)
    return {k: {"pte": _mean(v["pte"]), "tokens": _mean(v["tokens"])} for k, v in sorted(table.items())}


def copy_accuracy(module, env, model, tokenizer, n: int) -> dict:
    """Teacher-forced argmax accuracy on copied digits, per behaviour: tool-call arguments and answers."""
    import torch

    from pte_rl.pricing.trajectory import renderable

    schemas = env.tool_schemas()
    counts: dict = defaultdict(lambda: [0, 0])
    rows = env.eval_dataset
    for index in range(min(n, len(rows))):
        problem = module.Problem.parse(rows[index]["expression"], rows[index]["level"])
        for behaviour in module.BEHAVIOURS:
            if behaviour == "direct" and problem.needs_tool:
                continue
            messages = renderable(module.script(problem, behaviour, report_lines=_report_lines(env)))
            text = tokenizer.apply_chat_template(messages, tools=schemas, tokenize=False)
            encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            spans = {"answer": [], "arguments": []}
            answer_start = text.rfind("\\boxed{") + len("\\boxed{")
            spans["answer"].append((answer_start, text.find("}", answer_start)))
            for key in ('"expression": "', '"code": "'):
                at = text.find(key)
                while at >= 0:
                    start = at + len(key)
                    spans["arguments"].append((start, text.find('"', start)))
                    at = text.find(key, start)
            ids = torch.tensor([encoded["input_ids"]])
            with torch.no_grad():
                predicted = model(ids).logits[0].argmax(-1)
            for kind, ranges in spans.items():
                for position, (begin, _) in enumerate(encoded["offset_mapping"]):
                    if position and text[begin].isdigit() and any(a <= begin < b for a, b in ranges):
                        for key in (f"{kind}/{behaviour}", f"{kind}/*"):
                            counts[key][0] += int(predicted[position - 1] == ids[0, position])
                            counts[key][1] += 1
    return {key: {"accuracy": hit / total, "digits": total} for key, (hit, total) in sorted(counts.items())}


def repeats_a_digit(value: int) -> bool:
    """A result the copy can over- or under-run: one digit, or a digit twice in a row (``9``, ``1122``)."""
    digits = str(value).lstrip("-")
    return len(digits) == 1 or any(a == b for a, b in itertools.pairwise(digits))


def answer_accuracy(module, env, model, tokenizer, n: int, samples: int, temperature: float,
                    repeated_only: bool = False) -> dict:
    """Sampled copies of the result into the answer, per level and behaviour, on hard held-out items.

    Every turn of the scripted chat is teacher-forced up to and including ``\\boxed{``; the rest of
    the answer is sampled ``samples`` times at ``temperature``. So it measures the copy alone, not
    the choice of what to do after a tool response (which the teacher-forced argmax probe cannot show:
    a copy right under argmax at 0.5 probability is wrong half the time when sampled).
    ``repeated_only`` keeps the items whose result :func:`repeats_a_digit`, where a drifted length
    prior shows first (``9`` answered ``99``).
    """
    import torch

    from pte_rl.pricing.trajectory import renderable

    schemas = env.tool_schemas()
    counts: dict = defaultdict(lambda: [0, 0])
    rows = env.eval_dataset
    generator_seed = torch.initial_seed()
    torch.manual_seed(4321)
    hard = [module.Problem.parse(rows[i]["expression"], rows[i]["level"]) for i in range(len(rows))
            if rows[i]["level"] > 1]
    if repeated_only:
        hard = [problem for problem in hard if repeats_a_digit(problem.value)]
    for problem in hard[:n]:
        for behaviour in module.BEHAVIOURS:
            if behaviour == "direct":
                continue
            messages = renderable(module.script(problem, behaviour, report_lines=_report_lines(env)))
            prefix = tokenizer.apply_chat_template(messages[:-1], tools=schemas, tokenize=False,
                                                   add_generation_prompt=True) + "\\boxed{"
            ids = tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                out = model.generate(ids.repeat(samples, 1), attention_mask=torch.ones_like(ids).repeat(samples, 1),
                                     max_new_tokens=8, do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
            for row in out:
                text = tokenizer.decode(row[ids.shape[1]:], skip_special_tokens=True)
                hit = text.split("}")[0] == str(problem.value) and "}" in text
                for key in (f"L{problem.level}/{behaviour}", f"L{problem.level}/*"):
                    counts[key][0] += int(hit)
                    counts[key][1] += 1
    torch.manual_seed(generator_seed)
    return {key: {"accuracy": hit / total, "samples": total} for key, (hit, total) in sorted(counts.items())}


def _report_lines(env) -> int:
    """The environment's report length: its own option, else arith's default."""
    from pte_rl.tiny.data import environment_module

    default = environment_module("arith").DEFAULT_REPORT_LINES
    return dict(env.source[1]).get("report_lines", default) if env.source else default


def _mean(values) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def sample(model_dir: Path, env, temperature: float, n: int, samples: int, batch: int, max_completion: int) -> list:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pte_rl.rollout.backends import SamplingConfig, TransformersBackend
    from pte_rl.rollout.loop import RolloutConfig, TaskInfo, run_rollouts

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    backend = TransformersBackend(model, tokenizer)
    config = RolloutConfig(max_turns=env.max_turns, max_completion_length=max_completion,
                           sampling=SamplingConfig(temperature=temperature))
    rows = env.eval_dataset.select(range(min(n, len(env.eval_dataset))))
    items = [rows[i] for i in range(len(rows)) for _ in range(samples)]
    torch.manual_seed(1234)
    out = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        results = run_rollouts(
            [r["prompt"] for r in chunk], backend, tokenizer, env.tools, config,
            check_answer=env.check_answer, tasks=[TaskInfo(r["ground_truth"], r["task_id"]) for r in chunk],
        )
        out += [(r, result.trajectory) for r, result in zip(chunk, results, strict=True)]
    return out


def summarise(module, sampled: list, gamma: float) -> dict:
    from pte_rl.pricing.cost import pte

    groups: dict = defaultdict(list)
    for row, trajectory in sampled:
        behaviour = module.classify_behaviour(trajectory.messages)
        cls = "hard" if row["level"] > 1 else "easy"
        record = (bool(trajectory.correct), pte(trajectory, gamma).total, trajectory.decode_tokens)
        for key in (f"{cls}/{behaviour}", f"all/{behaviour}", f"{cls}/*", "all/*"):
            groups[key].append(record)
    totals = {c: len(groups.get(f"{c}/*", [])) for c in ("easy", "hard", "all")}
    table = {}
    for key, records in sorted(groups.items()):
        cls = key.split("/")[0]
        table[key] = {
            "share": len(records) / totals[cls], "n": len(records),
            "accuracy": _mean([r[0] for r in records]), "pte": _mean([r[1] for r in records]),
            "tokens": _mean([r[2] for r in records]),
        }
    # The same items answered efficiently: direct on easy, one calculator call on hard (mean of the
    # policy's own efficient samples per class).
    ideal = {}
    for cls in ("easy", "hard"):
        efficient = table.get(f"{cls}/{'direct' if cls == 'easy' else 'call'}")
        ideal[cls] = efficient["pte"] if efficient else float("nan")
    share_easy = totals["easy"] / totals["all"] if totals["all"] else 0.0
    ideal_pte = share_easy * ideal["easy"] + (1 - share_easy) * ideal["hard"]
    mean_pte = table["all/*"]["pte"]
    wasteful = sum(v["n"] for k, v in table.items()
                   if k.startswith("easy/") and k != "easy/*" and not k.endswith("/direct"))
    wasteful += sum(v["n"] for k, v in table.items()
                    if k.startswith("hard/") and k != "hard/*" and not k.endswith("/call"))
    return {"table": table, "ideal_pte": ideal_pte, "mean_pte": mean_pte,
            "max_cut": 1 - ideal_pte / mean_pte if mean_pte else float("nan"),
            "wasteful_share": wasteful / totals["all"] if totals["all"] else float("nan")}


def print_table(summary: dict, scripted: dict, temperature: float) -> None:
    print(f"\nsampled at T={temperature}: share / accuracy / PTE / generated tokens")
    print(f"{'class/behaviour':<18}{'n':>5}{'share':>8}{'acc':>8}{'PTE':>9}{'tokens':>8}   scripted PTE / tokens")
    for key, row in summary["table"].items():
        ref = scripted.get(key)
        ref_text = f"{ref['pte']:9.1f} / {ref['tokens']:.1f}" if ref else ""
        print(f"{key:<18}{row['n']:>5}{row['share']:>8.2f}{row['accuracy']:>8.3f}{row['pte']:>9.1f}"
              f"{row['tokens']:>8.1f}   {ref_text}")
    print(f"wasteful share {summary['wasteful_share']:.2f}; mean PTE {summary['mean_pte']:.1f}; "
          f"efficient policy on the same items {summary['ideal_pte']:.1f} (max cut {summary['max_cut']:.1%})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a tiny-policy directory (default: build or reuse the default)")
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0, 0.7])
    parser.add_argument("--n", type=int, default=100, help="held-out items")
    parser.add_argument("--samples", type=int, default=4, help="samples per item")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--gamma", type=float, default=0.005)
    parser.add_argument("--max-completion", type=int, default=1536)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the sampling (the build keeps its own)")
    parser.add_argument("--copy-items", type=int, default=20, help="held-out items for the copy probe")
    parser.add_argument("--answer-items", type=int, default=40,
                        help="hard held-out items for the sampled answer-copy probe (0: skip it)")
    parser.add_argument("--answer-samples", type=int, default=4, help="samples per item and behaviour")
    parser.add_argument("--answer-repeated", action="store_true",
                        help="answer-copy probe on the items whose result repeats a digit or has one digit")
    parser.add_argument("--copy-only", action="store_true", help="stop after the copy probes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tiny_behaviours.json"))
    args = parser.parse_args(argv)

    import torch

    from pte_rl.rollout.env import load_environment
    from pte_rl.tiny.build import build_tiny_policy
    from pte_rl.tiny.config import BUILD_INFO, TinyConfig
    from pte_rl.tiny.data import environment_module

    torch.set_num_threads(args.threads or min(8, os.cpu_count() or 1))
    start, cpu_start = time.perf_counter(), time.process_time()
    model_dir = Path(args.model) if args.model else build_tiny_policy(TinyConfig())
    build = {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu_start}
    info_path = model_dir / BUILD_INFO
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    env_options = (info.get("config") or {}).get("env_options", {})
    env = load_environment("arith", **env_options)
    module = environment_module("arith")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    copying = copy_accuracy(module, env, model, tokenizer, args.copy_items)
    print("teacher-forced accuracy on copied digits (chance ~0.10):")
    for key, row in copying.items():
        print(f"  {key:<20}{row['accuracy']:>7.3f}  ({row['digits']} digits)")
    answers = {}
    for temperature in args.temperature if args.answer_items else []:
        answers[str(temperature)] = answer_accuracy(module, env, model, tokenizer, args.answer_items,
                                                        args.answer_samples, temperature, args.answer_repeated)
        print(f"sampled answer copies at T={temperature} (hard items, every turn forced up to \\boxed{{):")
        for key, row in answers[str(temperature)].items():
            print(f"  {key:<20}{row['accuracy']:>7.3f}  ({row['samples']} samples)")
    scripted = scripted_costs(module, env, tokenizer, args.gamma)
    results = {"model": str(model_dir), "build": info, "this_call": build, "gamma": args.gamma,
               "n_items": args.n, "samples": args.samples, "copy_accuracy": copying,
               "answer_probe": {"items": args.answer_items, "samples": args.answer_samples,
                                "repeated_only": args.answer_repeated},
               "answer_accuracy": answers, "scripted": scripted, "by_temperature": {}}
    for temperature in [] if args.copy_only else args.temperature:
        t0 = time.perf_counter()
        sampled = sample(model_dir, env, temperature, args.n, args.samples, args.batch, args.max_completion)
        summary = summarise(module, sampled, args.gamma)
        summary["sampling_s"] = time.perf_counter() - t0
        results["by_temperature"][str(temperature)] = summary
        print_table(summary, scripted, temperature)
    if info:
        print(f"\nbuild: {info.get('build_seconds')} s wall, {info.get('build_cpu_seconds')} s CPU, "
              f"{info.get('parameters'):,} parameters, final warm-start loss {info['sft_loss'][-1]:.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which held-out items a policy miscopies into its answer, per path: the per-item view of
``tiny_behaviours.py``'s sampled answer probe.

For every hard held-out ``arith`` item and each behaviour asked for, the scripted chat is
teacher-forced up to and including ``\\boxed{`` and the answer is sampled ``--samples`` times; the
script prints the items whose copy was wrong and how often, and writes them with ``--out``.

    python benchmarks/answer_copies_per_item.py                       # the default tiny policy
    python benchmarks/answer_copies_per_item.py --model runs/x/final --behaviours call --samples 32
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a policy directory (default: build or reuse the tiny one)")
    parser.add_argument("--behaviours", nargs="+", default=["call", "verbose"])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=4321)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the result as JSON")
    args = parser.parse_args(argv)

    import tiny_behaviours
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pte_rl.pricing.trajectory import renderable
    from pte_rl.rollout.env import load_environment
    from pte_rl.tiny.build import build_tiny_policy
    from pte_rl.tiny.config import TinyConfig
    from pte_rl.tiny.data import environment_module

    torch.set_num_threads(args.threads)
    model_dir = args.model or str(build_tiny_policy(TinyConfig()))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    env = load_environment("arith")
    module = environment_module("arith")
    schemas, rows = env.tool_schemas(), env.eval_dataset
    hard = [module.Problem.parse(rows[i]["expression"], rows[i]["level"]) for i in range(len(rows))
            if rows[i]["level"] > 1]
    torch.manual_seed(args.seed)
    result: dict = {"model": model_dir, "items": len(hard), "samples": args.samples,
                    "temperature": args.temperature, "behaviours": {}}
    for behaviour in args.behaviours:
        misses: Counter = Counter()
        for problem in hard:
            script = module.script(problem, behaviour, report_lines=tiny_behaviours._report_lines(env))
            messages = renderable(script)
            prefix = tokenizer.apply_chat_template(messages[:-1], tools=schemas, tokenize=False,
                                                   add_generation_prompt=True) + "\\boxed{"
            ids = tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                out = model.generate(ids.repeat(args.samples, 1),
                                     attention_mask=torch.ones_like(ids).repeat(args.samples, 1),
                                     max_new_tokens=8, do_sample=True, temperature=args.temperature,
                                     top_k=0, top_p=1.0)
            for row in out:
                text = tokenizer.decode(row[ids.shape[1]:], skip_special_tokens=True)
                if not (text.split("}")[0] == str(problem.value) and "}" in text):
                    misses[(f"{problem.a}{problem.op}{problem.b}", str(problem.value), text.split("}")[0])] += 1
        total = len(hard) * args.samples
        result["behaviours"][behaviour] = {
            "samples": total,
            "accuracy": 1 - sum(misses.values()) / total,
            "misses": [{"item": item, "value": value, "answered": answered, "samples": n}
                       for (item, value, answered), n in misses.most_common()],
        }
        print(f"{behaviour}: {total - sum(misses.values())} of {total} copies right")
        for (item, value, answered), n in misses.most_common():
            print(f"  {item} = {value}: answered {answered!r} on {n} of {args.samples}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()

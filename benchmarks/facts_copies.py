"""What a `facts` policy copies: the entity's name into its searches, the year from the results into its answer.

Every `facts` path needs two copies: the invented name from the question into the search query (else
the search returns other pages), and the year from a tool result into ``\\boxed{}``. This reads held-out
trajectories (a ``pte-rl rollout --env facts`` output, or a run's ``eval/trajectories.jsonl``) and prints:

- behaviour shares and accuracy per behaviour (``facts.classify_behaviour``);
- name copies: the share of search calls whose query names one of the question's entities exactly
  (the fact word removed from either end, so both query orders count, and a pair's ``and``); of
  those that got results, how many put the needed page first; on pairs, the share of first and
  second searches that name the question's first and second entity;
- year copies: the share of answers whose every year appears in the episode's tool results
  (copied, right or wrong), and accuracy among episodes whose searches all named an entity exactly.

With ``--model DIR`` it also probes the policy teacher-forced on fresh scripted chats (worlds it has
not seen, ``--probe-chats`` of them): the share of tokens it predicts right (argmax) in the names of
its search queries and in the years of its answers, per behaviour (the first digit of a year is
nearly always 1; a policy that copies is near 1.0, one that guesses the digits near 0.4).

    .venv/bin/python benchmarks/facts_copies.py TRAJECTORIES.jsonl [--seed 0] [--kinds years] [--model DIR]
        [--probe-chats 240] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("founded", "born", "invented", "capital")


def _arguments(call: dict) -> dict | None:
    raw = call.get("function", call).get("arguments")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    return raw if isinstance(raw, dict) else None


def query_name(query: str) -> str:
    """The query without its fact word (at either end) and the ``and`` of a pair's second query."""
    words = query.split()
    if words and words[0] in WORDS:
        words = words[1:]
    elif words and words[-1] in WORDS:
        words = words[:-1]
    if words[:1] == ["and"]:
        words = words[1:]
    return " ".join(words)


def tally(path: Path, seed: int, kinds: str) -> dict:
    from pte_rl.envs import facts
    from pte_rl.pricing.jsonl import read_jsonl

    world = facts.build_world(seed, 200)
    entities = {q["task_id"]: [name for _, name in q["entities"]] for q in facts.build_questions(world, kinds)}
    behaviours: Counter = Counter()
    correct_by: Counter = Counter()
    searches = named = answered = first_hit = answers = years_copied = 0
    all_named = all_named_correct = 0
    pair_named: Counter = Counter()  # (position in the question, copied) over the searches of pair episodes
    for _, record in read_jsonl(path):
        messages = record["messages"]
        behaviour = facts.classify_behaviour(messages)
        behaviours[behaviour] += 1
        correct_by[behaviour] += bool(record.get("correct"))
        names = entities.get(record.get("task_id"), [])
        episode_named = episode_searches = 0
        order = 0
        for index, message in enumerate(messages):
            for call in message.get("tool_calls") or []:
                arguments = _arguments(call)
                if call.get("function", call).get("name") != "search" or arguments is None:
                    continue
                searches += 1
                episode_searches += 1
                name = query_name(str(arguments.get("query", "")))
                if len(names) == 2 and order < 2:
                    pair_named[("first", "second")[order], name == names[order]] += 1
                order += 1
                if name in names:
                    named += 1
                    episode_named += 1
                    doc = facts.Entity("city", name).doc_id.split("-", 1)[1]
                    results = next((m.get("content") or "" for m in messages[index + 1:]  # this call's result
                                    if m.get("role") == "tool" and m.get("tool_call_id") in (None, call.get("id"))), "")
                    answered += bool(results)  # none when the budget stopped the episode before the results
                    first_hit += bool(re.match(rf"\[1\] id: [a-z]+-{re.escape(doc)} ", results))
        if episode_searches and episode_named == episode_searches:
            all_named += 1
            all_named_correct += bool(record.get("correct"))
        final = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "assistant"), "")
        boxed = re.findall(r"\\boxed\{([^}]*)\}", final)
        if boxed:
            answers += 1
            tool_text = " ".join(m.get("content") or "" for m in messages if m.get("role") == "tool")
            years = re.findall(r"\d{3,4}", boxed[-1])
            years_copied += bool(years) and all(y in tool_text for y in years)
    n = sum(behaviours.values())
    return {
        "trajectories": n,
        "accuracy": sum(correct_by.values()) / max(n, 1),
        "behaviours": {b: {"share": c / n, "accuracy": correct_by[b] / c} for b, c in behaviours.most_common()},
        "searches": searches,
        "name_copied": named / max(searches, 1),
        "needed_page_first_when_named": first_hit / max(answered, 1),
        "pair_names_copied": {which: pair_named[which, True] / max(pair_named[which, True] + pair_named[which, False],
                                                                   1) for which in ("first", "second")},
        "answers_boxed": answers,
        "answer_years_from_tool_results": years_copied / max(answers, 1),
        "episodes_all_searches_named": all_named,
        "accuracy_when_all_searches_named": all_named_correct / max(all_named, 1),
    }


def probe(model_dir: Path, chats: int, kinds: str) -> dict:
    """Teacher-forced argmax accuracy on the names in search queries and the years in answers of
    ``chats`` scripted chats about fresh worlds (scripted seed 7: not the build's own seed 0)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pte_rl.envs import facts
    from pte_rl.pricing.trajectory import renderable
    from pte_rl.rollout.env import load_environment

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    schemas = load_environment("facts", kinds=kinds).tool_schemas()
    hits: dict = {}

    def count(label: str, right: bool) -> None:
        done, total = hits.get(label, (0, 0))
        hits[label] = (done + right, total + 1)

    for record in facts.scripted_trajectories(7, chats, kinds=kinds):
        text = tokenizer.apply_chat_template(renderable(record["messages"]), tools=schemas, tokenize=False)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor([encoded["input_ids"]])
        with torch.no_grad():
            predicted = model(input_ids=ids).logits[0].argmax(-1)
        spans = []
        start = text.rfind("\\boxed{") + len("\\boxed{")
        spans.append((start, text.find("}", start), f"answer:{record['behaviour']}"))
        for order, match in enumerate(re.finditer(r'"query": "[a-z]+(?: and)?( [^"]*)"', text)):
            which = "" if record["kind"] != "pair-founded" else \
                (" (pair, first)" if order % 2 == 0 else " (pair, second)")
            spans.append((match.start(1), match.end(1), "query name" + which))
        for begin, end, label in spans:
            for index, (a, b) in enumerate(encoded["offset_mapping"]):
                if index and a >= begin and b <= end and b > a:
                    count(label, bool(predicted[index - 1] == ids[0, index]))
    return {label: {"accuracy": done / total, "tokens": total} for label, (done, total) in sorted(hits.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trajectories", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="environment seed the trajectories come from")
    parser.add_argument("--kinds", default="years")
    parser.add_argument("--model", type=Path, help="policy directory to probe teacher-forced")
    parser.add_argument("--probe-chats", type=int, default=240)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = tally(args.trajectories, args.seed, args.kinds)
    if args.model:
        result["teacher_forced"] = probe(args.model, args.probe_chats, args.kinds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

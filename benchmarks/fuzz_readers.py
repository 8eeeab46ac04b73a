"""Fuzz the log readers: seeded malformed records in every shape, read in-process and by `pte-rl score`.

Each generated record starts as a valid one (interchange, ShareGPT or Hermes shape) and gets one to
three mutations: a field set to a value of the wrong type (or a huge string, a deep nest, NaN, a
huge integer), a field deleted, an unknown role, a tool call with bad arguments, or its JSON text
broken. Every record is read with :func:`pte_rl.pricing.formats.parse_any` and scored with
``pte_rl.cli.main(["score", ...])`` (every tenth also with ``pte-rl patterns``). The outcome is
*accepted* (exit 0), *rejected* (exit 2, a message naming file:line and a field, no ``--out``), or a
*traceback* (anything else: a bug). Prints the counts and writes them to
benchmarks/results/fuzz_readers.json.

    python benchmarks/fuzz_readers.py [--records 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from pte_rl.cli import main
from pte_rl.pricing.formats import parse_any
from pte_rl.pricing.jsonl import FormatError

RESULTS = Path(__file__).parent / "results" / "fuzz_readers.json"
CALL = {"name": "python", "arguments": {"code": "print(6*7)"}}
USAGE = [{"prompt_tokens": 120, "completion_tokens": 18}, {"prompt_tokens": 147, "completion_tokens": 7}]


def valid_record(shape: str) -> dict[str, Any]:
    if shape == "sharegpt":
        return {"id": "t", "correct": True, "system": "s", "tools": [{"name": "python", "parameters": {}}],
                "conversations": [
                    {"from": "human", "value": "6*7?"},
                    {"from": "function_call", "value": json.dumps(CALL), "usage": dict(USAGE[0])},
                    {"from": "observation", "value": "42", "tokens": 9},
                    {"from": "gpt", "value": "42.", "usage": dict(USAGE[1])}]}
    if shape == "hermes":
        return {"id": "t", "correct": False, "messages": [
            {"role": "user", "content": "6*7?"},
            {"role": "assistant", "content": f"<tool_call>{json.dumps(CALL)}</tool_call>", "usage": dict(USAGE[0])},
            {"role": "user", "content": "<tool_response>42</tool_response>", "tokens": 9},
            {"role": "assistant", "content": "42.", "usage": dict(USAGE[1])}]}
    return {"id": "t", "task_id": "a", "correct": None, "answer": "42", "events": [{"turn": 0, "kind": "x"}],
            "timing": None, "messages": [
                {"role": "user", "content": "6*7?"},
                {"role": "assistant", "content": "", "usage": dict(USAGE[0]), "timing": {"prefill_s": 0.1},
                 "tool_calls": [{"id": "c0", "type": "function",
                                 "function": {"name": "python", "arguments": json.dumps(CALL["arguments"])}}]},
                {"role": "tool", "tool_call_id": "c0", "content": "42", "tokens": 9},
                {"role": "assistant", "content": [{"type": "text", "text": "42."}], "usage": dict(USAGE[1])}]}


def junk(rng: random.Random) -> Any:
    choices: list[Any] = [
        None, True, False, -1, 0, 2.5, float("nan"), float("inf"), 10**30, "", "x" * rng.choice([10, 100_000]),
        [], {}, [1, "a", None], {"a": {"b": [None]}}, "robot", "<tool_call>{", "<tool_call>{\"name\": 3}</tool_call>",
        "{not json", "[]", json.dumps({"name": "f", "arguments": 5}), "</tool_response>", 7, [[[[[]]]]],
    ]
    return copy.deepcopy(rng.choice(choices))


def slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON value, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append((node, key))
        slots(value, out)
    return out


def mutate(rng: random.Random, record: dict[str, Any]) -> None:
    places = slots(record, [])
    container, key = rng.choice(places)
    op = rng.random()
    if op < 0.55:
        container[key] = junk(rng)
    elif op < 0.7 and isinstance(container, dict):
        del container[key]
    elif op < 0.8:
        roles = [c for c, k in places if isinstance(c, dict) and k in ("role", "from")]
        if roles:
            target = rng.choice(roles)
            target["role" if "role" in target else "from"] = rng.choice(["robot", "", "function", "ipython", 3])
    elif op < 0.9:
        calls = [c for c, k in places if k == "arguments" or (k == "value" and "function_call" in str(c))]
        if calls:
            target = rng.choice(calls)
            target["arguments" if "arguments" in target else "value"] = junk(rng)
    else:
        record[rng.choice(["messages", "conversations", "tools", "usage", "events"])] = junk(rng)


def line_text(rng: random.Random, record: dict[str, Any]) -> bytes:
    text = json.dumps(record).encode()
    r = rng.random()
    if r < 0.04:
        return text[: rng.randrange(1, len(text))]  # cut short
    if r < 0.06:
        return b"\xff\xfe" + text
    if r < 0.07:
        return b"[" * 100_000 + b"]" * 100_000
    if r < 0.08:
        return b"[" + text + b"]"
    return text


def call_cli(argv: list[str]) -> tuple[int | str, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            return main(argv), err.getvalue()
        except SystemExit as exc:
            return f"SystemExit({exc.code})", err.getvalue()
        except Exception:  # noqa: BLE001 - counting the CLI's crashes is the point
            return "traceback", traceback.format_exc()


def kind_of(field: str) -> str:
    return re.sub(r"\[\d+\]", "[]", field)


def one(rng: random.Random, workdir: Path, n: int, tally: Counter[str], examples: list[str]) -> None:
    shape = rng.choice(["openai", "sharegpt", "hermes"])
    record = valid_record(shape)
    for _ in range(rng.randint(1, 3)):
        mutate(rng, record)
    log, out = workdir / "log.jsonl", workdir / "rows.jsonl"
    log.write_bytes(line_text(rng, record) + b"\n")
    out.unlink(missing_ok=True)
    try:
        record_read = json.loads(log.read_bytes())
    except (ValueError, RecursionError):
        record_read = None  # not JSON: the line reader's to report (through the CLI below)
    try:
        if record_read is not None:
            parse_any(record_read, "auto", path=str(log), line=1)
    except FormatError:
        pass
    except Exception:  # noqa: BLE001 - counting the readers' crashes is the point
        tally["reader_traceback"] += 1
        examples.append(traceback.format_exc()[-400:])
    commands = [["score", str(log), "--gamma", "0.01", "--out", str(out)]]
    if n % 10 == 0:
        commands.append(["patterns", str(log), "--gamma", "0.01", "--json"])
    for argv in commands:
        code, err = call_cli(argv)
        if code == 0:
            tally[f"{argv[0]}:accepted"] += 1
        elif code == 2 and re.search(r"log\.jsonl:1: field '([^']+)'", err) and not out.exists():
            field = re.search(r"field '([^']+)'", err)
            tally[f"{argv[0]}:rejected"] += 1
            tally[f"{argv[0]}:rejected:{kind_of(field.group(1)) if field else '?'}"] += 1
        else:
            tally[f"{argv[0]}:traceback"] += 1
            examples.append(f"{argv[0]} {code}: {err[-400:]}")


def run(records: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    tally: Counter[str] = Counter()
    examples: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(records):
            one(rng, Path(tmp), n, tally, examples)
    tracebacks = tally["score:traceback"] + tally["patterns:traceback"] + tally["reader_traceback"]
    return {"records": records, "seed": seed, "seconds": round(time.perf_counter() - started, 1),
            "tracebacks": tracebacks, "counts": dict(sorted(tally.items())), "traceback_examples": examples[:5]}


def main_cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    result = run(args.records, args.seed)
    for key, value in result["counts"].items():
        print(f"{key:<60}{value:>8}")
    print(f"tracebacks: {result['tracebacks']} of {result['records']} records ({result['seconds']} s)")
    for example in result["traceback_examples"]:
        print("---\n" + example)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["tracebacks"] else 0


if __name__ == "__main__":
    raise SystemExit(main_cli())

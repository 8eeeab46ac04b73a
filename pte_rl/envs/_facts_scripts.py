"""The scripted behaviours of `facts` (see :mod:`pte_rl.envs.facts`): the warm-start chats of the tiny
policy, and :func:`classify_behaviour`, which labels what a policy did.

Every behaviour reaches the answer, and reads it from the same place (the first search result's
snippet, or the page it comes from); they differ only in what they cost. On a one-look-up question:

    snippet   search(q, k=1), answer from the snippet                       the efficient path
    wide      search(q, k=5), answer from the first snippet                 4 more snippets in the context
    visit     search(q, k=1), visit(the result's id), answer from the page  a page in the context, +1 turn
    repeat    search(q, k=1) twice, answer                                  +1 turn, +1 call

On a question about two independent facts (``pair-founded``):

    parallel  one turn, two searches (k=1), answer                          the efficient path
    serial    the same two searches in two turns, answer                    +1 turn: one more re-prefill
    wide      one turn, two searches (k=5), answer                          8 more snippets

``wide`` and ``serial`` generate the same number of tokens and make the same tool calls as the efficient
path: a token-count or tool-call penalty cannot see them; PTE prices the tokens they put in the context
and the extra prefill. ``visit`` and ``repeat`` cost a call and a few generated tokens more, which the
naive penalties see, and far more prefill, which only PTE prices.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from pte_rl.envs import facts

ONE_LOOKUP = ("snippet", "wide", "visit", "repeat")
TWO_LOOKUPS = ("parallel", "serial", "wide")
BEHAVIOURS = ("snippet", "wide", "visit", "repeat", "parallel", "serial")
EFFICIENT = {"snippet", "parallel"}
# The warm start's mixture, renormalised per question over the behaviours it allows: on one-look-up
# questions 20% snippet, 33% wide, 33% visit, 13% repeat; on pairs 47% parallel, 20% serial, 33% wide.
# The built policy samples the minority paths far less often than they are written (version 3, with
# pairs at 20% parallel: 0.4% parallel, 89% wide at T=0.7), and GRPO learns nothing about a path that
# no rollout of a group takes; version 4 writes parallel more often so that pairs' groups hold it.
DEFAULT_MIX = {"snippet": 0.15, "wide": 0.25, "visit": 0.25, "repeat": 0.10, "parallel": 0.35, "serial": 0.15}
WIDE_RESULTS = 5
_QUERY_WORD = {"city": "founded", "person": "born", "invention": "invented", "company": "founded",
               "country": "capital"}


def query(kind: str, name: str, second: bool = False) -> str:
    """The scripted search query for an entity's page: the word its fact sentence holds, then its name
    (BM25 ranks the entity's own page first for every question of the ``years`` kinds); for the second
    name of a two-look-up question, the word, ``and``, then the name (``founded and Tekaen``).

    The word comes first so that the name follows a space, as it does in the question: a byte-level
    BPE splits ``" Valmora"`` and ``"Valmora"`` (after the JSON quote) into different tokens, and a
    policy that must copy a name it has never seen copies token by token. Name-first queries (build
    version 6) left the tiny policy to re-tokenise every name, and it copied 1 name in 926 searches.

    ``and`` is the word before the second name in the question (``the cities of Viatatour and Tekaen``):
    it points a small policy at the name to copy, as the previous token does for any copy by induction.
    Without it the tiny policy got 5% of the second names of pairs right, against 99% of the first ones
    (build ``7a0ee274e14c``). The search drops ``and`` (an English stop word): the results are those of
    ``founded Tekaen``."""
    return f"{_QUERY_WORD[kind]} {'and ' if second else ''}{name}"


def _call(name: str, arguments: dict, index: int) -> dict:
    return {"id": f"call_{index}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def _turn(calls: list[tuple[str, dict]], first_index: int, tools: Mapping[str, Any]) -> list[dict]:
    """One assistant turn with ``calls``, then one tool message per call (the tools' real outputs)."""
    made = [_call(name, arguments, first_index + i) for i, (name, arguments) in enumerate(calls)]
    out: list[dict] = [{"role": "assistant", "content": "", "tool_calls": made}]
    for call, (name, arguments) in zip(made, calls, strict=True):
        out.append({"role": "tool", "tool_call_id": call["id"], "name": name, "content": tools[name](**arguments)})
    return out


def script(question: dict, behaviour: str, tools: Mapping[str, Any]) -> list[dict]:
    """The chat (OpenAI-style messages, tool-call arguments as JSON strings) of one behaviour on one
    question (a :func:`facts.build_questions` record); ``tools`` maps ``search``/``visit`` to the
    environment's tools, whose outputs the chat holds."""
    lookups = [query(kind, name, second=index == 1) for index, (kind, name) in enumerate(question["entities"])]
    allowed = TWO_LOOKUPS if len(lookups) == 2 else ONE_LOOKUP
    if question["hops"] != 1 or len(lookups) not in (1, 2):
        raise ValueError(f"question {question['task_id']}: only one-hop questions (one or two independent "
                         "look-ups) are scripted")
    if behaviour not in allowed:
        raise ValueError(f"behaviour: expected one of {allowed} for {question['task_id']}, got {behaviour!r}")
    search = [("search", {"query": q, "k": WIDE_RESULTS if behaviour == "wide" else 1}) for q in lookups]
    if behaviour in ("snippet", "wide", "parallel"):
        turns = _turn(search, 0, tools)
    elif behaviour == "serial":
        turns = _turn(search[:1], 0, tools) + _turn(search[1:], 1, tools)
    elif behaviour == "repeat":
        turns = _turn(search, 0, tools) + _turn(search, 1, tools)
    else:  # visit
        kind, name = question["entities"][0]
        doc_id = facts.Entity(kind, name).doc_id
        turns = _turn(search, 0, tools) + _turn([("visit", {"doc": doc_id})], 1, tools)
    prompt = [{"role": "system", "content": facts.SYSTEM_PROMPT}, {"role": "user", "content": question["question"]}]
    return prompt + turns + [{"role": "assistant", "content": f"\\boxed{{{question['answer']}}}"}]


def _mix(mix: Mapping[str, float] | None) -> dict[str, float]:
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(mix) - set(BEHAVIOURS)
    if unknown or any(float(w) < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(
            f"mix: expected non-negative weights over {BEHAVIOURS} with a positive sum, got {mix!r}"
            + (f" (unknown: {sorted(unknown)})" if unknown else "")
        )
    return {b: float(mix.get(b, 0.0)) for b in BEHAVIOURS}


WORLDS = ("fresh", "environment")
CHATS_PER_WORLD = 20
FRESH_WORLD_BASE = 1_000_000


def fresh_world_seed(seed: int, index: int) -> int:
    """The world seed of the ``index``-th fresh world of scripted seed ``seed``: far from the environment
    seeds anyone trains on (0, 1, ...), so that a warm start never sees the world it is evaluated on."""
    return FRESH_WORLD_BASE + 10_000 * seed + index


def scripted_trajectories(
    seed: int,
    n: int,
    mix: Mapping[str, float] | None = None,
    *,
    n_cities: int = 200,
    n_eval: int = 200,
    page_words: int = 800,
    visit_budget: int = 4000,
    snippet_chars: int = 160,
    kinds: str | list[str] = "years",
    worlds: str = "fresh",
) -> list[dict]:
    """``n`` labelled chats, behaviours drawn from ``mix`` (renormalised per question over the behaviours
    it allows); ``seed`` draws the worlds, questions and behaviours. The options are those of
    :func:`facts.load_environment` that shape what a chat holds.

    ``worlds``: ``fresh`` (default) asks every question in a world of its own making,
    :data:`CHATS_PER_WORLD` chats per world (world seeds :func:`fresh_world_seed`, never an environment's
    own), so no name or year recurs and a warm start learns to copy them from the question and the tool
    results; ``environment`` asks the training questions of the world of environment seed 0 (the
    world the environment's defaults build), which a small policy learns by heart instead: built that
    way, the tiny policy boxed invented years on held-out questions (0.001 accurate, docs/environments.md).

    Each record: ``{"messages", "behaviour", "task_id", "kind", "ground_truth", "world_seed"}``; a
    record's tool outputs are those of ``load_environment(seed=record["world_seed"], ...)``'s tools.
    """
    weights = _mix(mix)
    if worlds not in WORLDS:
        raise ValueError(f"worlds: expected one of {WORLDS}, got {worlds!r}")
    rng = random.Random(f"facts/scripted/{seed}")
    records: list[dict] = []
    world_index = 0
    while len(records) < n:
        world_seed = 0 if worlds == "environment" else fresh_world_seed(seed, world_index)
        world_index += 1
        world = facts.build_world(world_seed, n_cities)
        corpus = facts.Corpus(facts.build_corpus(world, world_seed, page_words))
        search, visit = facts.make_search_tools(corpus, snippet_chars=snippet_chars, visit_budget=visit_budget,
                                                max_results=facts.MAX_RESULTS)
        tools = {"search": search, "visit": visit}
        if worlds == "environment":
            _, pool = facts.split_questions(world, 0, kinds, n_eval, None, None)
        else:
            pool = facts.build_questions(world, kinds)
        pool = [q for q in pool if q["hops"] == 1]
        if not pool:
            raise ValueError(f"kinds {kinds!r}: no one-hop training question to script")
        for _ in range(n - len(records) if worlds == "environment" else min(CHATS_PER_WORLD, n - len(records))):
            question = rng.choice(pool)
            allowed = [b for b in (TWO_LOOKUPS if len(question["entities"]) == 2 else ONE_LOOKUP) if weights[b] > 0]
            if not allowed:
                raise ValueError(f"mix {weights} allows no behaviour for {question['kind']} questions")
            behaviour = rng.choices(allowed, [weights[b] for b in allowed])[0]
            records.append({"messages": script(question, behaviour, tools), "behaviour": behaviour,
                            "task_id": question["task_id"], "kind": question["kind"],
                            "ground_truth": question["answer"], "world_seed": world_seed})
    return records


def _args(call: dict) -> Any:
    raw = call.get("function", call).get("arguments")
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def classify_behaviour(messages: Sequence[dict]) -> str:
    """Which scripted behaviour a chat follows (``other`` when none, ``direct`` for an answer without a
    tool call): from the assistant turns' tool calls. Works on sampled trajectories as well as on
    :func:`script` output; a search without ``k`` counts as wide (the default returns 5 results)."""
    turns = [m for m in messages if m.get("role") == "assistant"]
    per_turn = [[(c.get("function", c).get("name"), _args(c)) for c in (t.get("tool_calls") or [])] for t in turns]
    per_turn = [calls for calls in per_turn if calls]
    if not per_turn:
        return "direct" if len(turns) == 1 else "other"
    if any(not isinstance(args, dict) for calls in per_turn for _, args in calls):
        return "other"

    def k(args: dict) -> int | None:
        value = args.get("k", WIDE_RESULTS)
        return value if isinstance(value, int) else None

    names = [[name for name, _ in calls] for calls in per_turn]
    queries = [[args.get("query") for _, args in calls] for calls in per_turn]
    if names == [["search"]]:
        return "snippet" if k(per_turn[0][0][1]) == 1 else "wide" if (k(per_turn[0][0][1]) or 0) > 1 else "other"
    if names == [["search", "search"]] and queries[0][0] != queries[0][1]:
        ks = {k(args) for _, args in per_turn[0]}
        return "parallel" if ks == {1} else "wide" if all((x or 0) > 1 for x in ks) else "other"
    if names == [["search"], ["search"]] and all(k(calls[0][1]) == 1 for calls in per_turn):
        return "repeat" if queries[0] == queries[1] else "serial"
    if names == [["search"], ["visit"]]:
        return "visit"
    return "other"

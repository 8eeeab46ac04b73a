"""`facts`: questions about a synthetic encyclopedia, answered with ``search`` and ``visit``.

A world of made-up entities is generated deterministically from a seed: countries (capital,
founding year, currency), cities (country, founding year, river), people (birth year, birth city),
inventions (inventor, year) and companies (founder, founding year, headquarters). Each entity has one
encyclopedia page: a first paragraph with its facts, then ``page_words`` words of filler prose
(history, geography, culture) that holds no answer. The pages form an in-memory corpus behind
pte_rl's BM25 ``search`` and ``visit`` tools.

Questions:

    one hop   "In what year was the city of Valmora founded?"     search (the snippet may already
              "Who invented the tessarine loom?"                   show the fact) or search + visit
    two hops  "In what year was the capital of Drekland founded?"  two look-ups

The choices cost different amounts: a search result's snippet is short, a visit returns up to
``visit_budget`` characters of page that stays in the context for every later turn, and visiting
pages that were not needed (or the same page twice) re-prefills all of that. Answers are names or
years, graded by the ``qa`` checker (normalised exact match or token F1 >= 0.8).

The question pool is shuffled once by the seed; the first ``n_eval`` questions are held out, the
training split takes the next ``n_train`` (all the rest by default), so the splits never share a task.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pte_rl.checkers import QAChecker
from pte_rl.rollout.env import Environment
from pte_rl.tools import Corpus, Document, make_search_tools

SYSTEM_PROMPT = (
    "Answer the question about the encyclopedia. Use the search tool to find pages and the visit tool "
    "to read one. Give the final answer as \\boxed{answer}."
)

MAX_RESULTS = 10
# The tiny policy's build (pte_rl.tiny.config.tiny_config): its copy drill copies spans of any tokens too,
# since every question's entity is an invented name of several tokens that the policy must copy into its
# query; and its warm start holds twice arith's chats, each about a fresh world (see scripted_trajectories),
# so that it learns to copy names and years rather than recall them, for 8000 updates (at 3000 it copied
# no year: held-out accuracy 0.018; at 8000, 0.714; docs/environments.md).
TINY_SETTINGS = {"copy_tokens": "any", "sft_examples": 6000, "sft_steps": 8000}
_ONSETS = ("b", "d", "dr", "f", "g", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t", "th", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ia", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "th", "m", "nd")
_THINGS = ("loom", "lamp", "compass", "press", "engine", "clock", "telescope", "pump", "kiln", "lathe")
_FILLER = (
    "The {adj} {noun} of the region has been described by many travellers.",
    "Local accounts mention a {adj} festival held every spring near the old {noun}.",
    "Historians disagree about the origin of the {adj} {noun} that gave the area its reputation.",
    "Visitors often remark on the {adj} light over the {noun} in the late afternoon.",
    "In later centuries the {noun} became known for its {adj} markets and narrow streets.",
    "Several songs and stories refer to the {adj} {noun}, though few of them agree on the details.",
    "A small museum keeps records of the {noun} and of the {adj} trades that grew around it.",
    "The {adj} climate shaped the habits of the people who lived near the {noun}.",
)
_ADJECTIVES = ("quiet", "ancient", "busy", "windy", "famous", "green", "stony", "misty", "long", "bright")
_NOUNS = ("harbour", "bridge", "valley", "square", "library", "hill", "canal", "tower", "garden", "road")


@dataclass(slots=True)
class Entity:
    kind: str  # country | city | person | invention | company
    name: str
    facts: dict[str, str | int] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return f"{self.kind}-{self.name.lower().replace(' ', '-')}"


class _Names:
    """Distinct made-up names from syllables."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int) -> str:
        while True:
            parts = [self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(syllables)]
            name = ("".join(parts) + self.rng.choice(_CODAS)).capitalize()
            if name not in self.used:
                self.used.add(name)
                return name


def _four_digits(year: int) -> int:
    """Every year has four digits: a draw below 1000 moves a millennium on (942 -> 1942), the same draw,
    so every name and every other fact of a world stays what it was when cities were founded from 800.

    With three-digit years the tiny policy boxed the second year of a pair right after two one-result
    searches (0.99) and wrote a four-digit year in its place after two wide ones (2 right of 1211): a
    wasteful path failed for a reason that has nothing to do with its cost (docs/environments.md)."""
    return year + 1000 if year < 1000 else year


def build_world(seed: int, n_cities: int) -> list[Entity]:
    """The entities of the world for a seed; ``n_cities`` sets its size (other kinds scale with it)."""
    if n_cities < 5:
        raise ValueError(f"n_cities: expected at least 5, got {n_cities}")
    rng = random.Random(f"facts/{seed}")
    names = _Names(rng)
    n_countries, n_others = max(2, n_cities // 5), max(2, n_cities * 3 // 4)
    countries = [
        Entity("country", names.word(2) + rng.choice(("land", "ia", "mark", "stan"))) for _ in range(n_countries)
    ]
    cities = []
    for i in range(n_cities):
        country = countries[i % n_countries]
        cities.append(Entity("city", names.word(rng.choice((2, 3))), {
            "country": country.name, "founded": _four_digits(rng.randint(800, 1900)), "river": names.word(2),
        }))
    for i, country in enumerate(countries):
        country.facts = {
            "capital": cities[i].name, "founded": rng.randint(1100, 1990), "currency": names.word(2).lower(),
        }
    people = [Entity("person", f"{names.word(2)} {names.word(2)}", {
        "born": rng.randint(1700, 1980), "birthplace": rng.choice(cities).name,
    }) for _ in range(n_others)]
    inventions = []
    for person in people:
        thing = f"{names.word(2).lower()} {rng.choice(_THINGS)}"
        names.used.add(thing)
        year = int(person.facts["born"]) + rng.randint(20, 60)
        inventions.append(Entity("invention", thing, {"inventor": person.name, "year": year}))
    companies = [Entity("company", f"{names.word(2)} {rng.choice(('Works', 'Company', 'Trading', 'Mills'))}", {
        "founder": rng.choice(people).name, "founded": rng.randint(1800, 2010), "headquarters": rng.choice(cities).name,
    }) for _ in range(n_others)]
    return countries + cities + people + inventions + companies


def _lead(entity: Entity) -> str:
    f = entity.facts
    if entity.kind == "country":
        return (f"{entity.name} is a country whose capital is {f['capital']}. It was founded in {f['founded']}, "
                f"and its currency is the {f['currency']}.")
    if entity.kind == "city":
        return (f"{entity.name} is a city in {f['country']}. It was founded in {f['founded']} on the banks of "
                f"the {f['river']} river.")
    if entity.kind == "person":
        return f"{entity.name} was an inventor and merchant, born in {f['born']} in the city of {f['birthplace']}."
    if entity.kind == "invention":
        return f"The {entity.name} is a device invented by {f['inventor']} in {f['year']}."
    return (f"{entity.name} is a company founded by {f['founder']} in {f['founded']}. Its headquarters are in "
            f"{f['headquarters']}.")


def page_text(entity: Entity, page_words: int, rng: random.Random) -> str:
    """The facts first, then about ``page_words`` words of filler prose that answers nothing."""
    paragraphs, words, sentences = [_lead(entity)], 0, []
    while words < page_words:
        sentence = rng.choice(_FILLER).format(adj=rng.choice(_ADJECTIVES), noun=rng.choice(_NOUNS))
        sentences.append(sentence)
        words += len(sentence.split())
        if len(sentences) == 5:
            paragraphs.append(" ".join(sentences))
            sentences = []
    if sentences:
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def build_corpus(world: list[Entity], seed: int, page_words: int) -> list[Document]:
    rng = random.Random(f"facts/pages/{seed}")
    return [Document(e.doc_id, e.name, page_text(e, page_words, rng), f"facts://{e.doc_id}") for e in world]


# Question kinds, by the task-id suffix they carry. ``classic``: names and years, one and two hops (the
# original set); ``years``: questions whose answers are years, one look-up each, and ``pair-founded``,
# two independent look-ups (the curriculum of the tiny policy, which copies digits well and names less).
CLASSIC_KINDS = ("capital", "capital-founded", "founded", "inventor", "inventor-born", "founder", "headquarters",
                 "hq-country")
YEAR_KINDS = ("founded", "born", "invented", "company-founded", "pair-founded")
KIND_SETS = {"classic": CLASSIC_KINDS, "years": YEAR_KINDS,
             "all": tuple(dict.fromkeys(CLASSIC_KINDS + YEAR_KINDS))}


def resolve_kinds(kinds: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A named set (``classic``, ``years``, ``all``) or a list of kinds, checked."""
    if isinstance(kinds, str):
        if kinds not in KIND_SETS:
            raise ValueError(f"kinds: expected one of {sorted(KIND_SETS)} or a list of kinds from "
                             f"{list(KIND_SETS['all'])}, got {kinds!r}")
        return KIND_SETS[kinds]
    chosen = tuple(kinds)
    unknown = [k for k in chosen if k not in KIND_SETS["all"]]
    if unknown or not chosen:
        raise ValueError(f"kinds: expected a non-empty list of {list(KIND_SETS['all'])}, got {list(chosen)!r}"
                         + (f" (unknown: {unknown})" if unknown else ""))
    return chosen


def build_questions(world: list[Entity], kinds: str | list[str] | tuple[str, ...] = "classic") -> list[dict]:
    """Every question of the given kinds the world answers: {question, answer, hops, task_id, kind,
    entities}; ``entities`` names the (kind, name) of each page that holds a needed fact."""
    wanted = set(resolve_kinds(kinds))
    by_name = {(e.kind, e.name): e for e in world}
    questions = []

    def add(question: str, answer: str | int, hops: int, entity: Entity, what: str,
            needs: tuple[Entity, ...] = ()) -> None:
        if what in wanted:
            questions.append({"question": question, "answer": str(answer), "hops": hops, "kind": what,
                              "task_id": f"facts-{entity.doc_id}-{what}",
                              "entities": [[n.kind, n.name] for n in (needs or (entity,))]})

    cities = [e for e in world if e.kind == "city"]
    for e in world:
        f = e.facts
        if e.kind == "country":
            add(f"What is the capital of {e.name}?", f["capital"], 1, e, "capital")
            capital = by_name[("city", str(f["capital"]))]
            add(f"In what year was the capital of {e.name} founded?", capital.facts["founded"], 2, e, "capital-founded",
                (e, capital))
        elif e.kind == "city":
            add(f"In what year was the city of {e.name} founded?", f["founded"], 1, e, "founded")
            other = cities[(cities.index(e) + 1) % len(cities)]
            add(f"In what years were the cities of {e.name} and {other.name} founded?",
                f"{f['founded']} and {other.facts['founded']}", 1, e, "pair-founded", (e, other))
        elif e.kind == "person":
            add(f"In what year was {e.name} born?", f["born"], 1, e, "born")
        elif e.kind == "invention":
            add(f"In what year was the {e.name} invented?", f["year"], 1, e, "invented")
            add(f"Who invented the {e.name}?", f["inventor"], 1, e, "inventor")
            inventor = by_name[("person", str(f["inventor"]))]
            add(f"In what year was the inventor of the {e.name} born?", inventor.facts["born"], 2, e, "inventor-born",
                (e, inventor))
        elif e.kind == "company":
            add(f"In what year was {e.name} founded?", f["founded"], 1, e, "company-founded")
            add(f"Who founded {e.name}?", f["founder"], 1, e, "founder")
            add(f"In which city is {e.name} headquartered?", f["headquarters"], 1, e, "headquarters")
            city = by_name[("city", str(f["headquarters"]))]
            add(f"In which country is {e.name} headquartered?", city.facts["country"], 2, e, "hq-country", (e, city))
    return questions


def load_environment(
    seed: int = 0,
    n_cities: int = 200,
    n_train: int | None = None,
    n_eval: int = 200,
    two_hop_fraction: float | None = None,
    page_words: int = 800,
    visit_budget: int = 4000,
    snippet_chars: int = 160,
    search_results: int = 5,
    kinds: str | list[str] = "classic",
    max_turns: int = 6,
) -> Environment:
    """The `facts` environment.

    Args:
        seed: generates the world, its pages and the question order.
        n_cities: size of the world (countries are n_cities/5; people, inventions, companies 3/4 of it).
        n_train: training questions (None: every question not held out).
        n_eval: held-out questions.
        two_hop_fraction: share of two-hop questions in each split (None: as they come, about 1/3).
        page_words: words of filler prose after each page's facts (what an unneeded visit costs; the
            default 800 makes pages of ~4,900 characters, longer than ``visit_budget``, as real pages are).
        visit_budget: characters of a page that ``visit`` returns (the search tools' default, 4000: ~1,000
            tokens of page that an unneeded visit leaves in the context).
        snippet_chars: characters of each search result's snippet.
        search_results: results a search returns when the call does not pass ``k`` (at most 10).
        kinds: question kinds: ``classic`` (names and years, one and two hops), ``years`` (answers that
            are years: one look-up each, or two independent look-ups for ``pair-founded``; what the tiny
            policy is built for), ``all``, or a list of kinds (see :data:`KIND_SETS`).
        max_turns: assistant turns per episode.
    """
    from datasets import Dataset

    if two_hop_fraction is not None and not 0.0 <= two_hop_fraction <= 1.0:
        raise ValueError(f"two_hop_fraction: expected a number in [0, 1] or None, got {two_hop_fraction!r}")
    if not 1 <= search_results <= MAX_RESULTS:
        raise ValueError(f"search_results: expected 1 to {MAX_RESULTS}, got {search_results!r}")
    world = build_world(seed, n_cities)
    corpus = Corpus(build_corpus(world, seed, page_words))
    held_out, rest = split_questions(world, seed, kinds, n_eval, n_train, two_hop_fraction)

    def rows(items: list[dict]) -> dict[str, list]:
        return {
            "prompt": [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": q["question"]}]
                       for q in items],
            "ground_truth": [q["answer"] for q in items],
            "task_id": [q["task_id"] for q in items],
            "hops": [q["hops"] for q in items],
        }

    return Environment(
        name="facts",
        dataset=Dataset.from_dict(rows(rest)),
        eval_dataset=Dataset.from_dict(rows(held_out)),
        tools=make_search_tools(corpus, snippet_chars=snippet_chars, visit_budget=visit_budget,
                                default_results=search_results, max_results=MAX_RESULTS),
        check_answer=QAChecker(),
        system_prompt=SYSTEM_PROMPT,
        max_turns=max_turns,
    )


def split_questions(world: list[Entity], seed: int, kinds: str | list[str], n_eval: int, n_train: int | None,
                    two_hop_fraction: float | None) -> tuple[list[dict], list[dict]]:
    """(held-out, training) questions: the pool shuffled by the seed, the first ``n_eval`` held out."""
    questions = build_questions(world, kinds)
    random.Random(f"facts/questions/{seed}").shuffle(questions)
    if two_hop_fraction is not None:
        questions = _mixed(questions, two_hop_fraction)
    if n_eval >= len(questions):
        raise ValueError(f"n_eval: the world has {len(questions)} questions; hold out fewer than that (got {n_eval})")
    held_out, rest = questions[:n_eval], questions[n_eval:]
    if n_train is not None:
        if n_train > len(rest):
            raise ValueError(f"n_train: only {len(rest)} questions are left after n_eval={n_eval}; got {n_train} "
                             "(raise n_cities for a bigger world)")
        rest = rest[:n_train]
    return held_out, rest


def _mixed(questions: list[dict], two_hop_fraction: float) -> list[dict]:
    """Interleave one- and two-hop questions so that every prefix has about the requested share."""
    one = [q for q in questions if q["hops"] == 1]
    two = [q for q in questions if q["hops"] == 2]
    mixed: list[dict] = []
    taken_two = 0
    while one or two:
        want_two = two and (not one or taken_two < two_hop_fraction * (len(mixed) + 1))
        if want_two and two_hop_fraction > 0:
            mixed.append(two.pop(0))
            taken_two += 1
        elif one:
            mixed.append(one.pop(0))
        else:
            break
    return mixed


# The warm start's scripted behaviours (kept in their own module; imported here so that the tiny
# policy's build finds them in the environment, and its cache key covers their source).
from pte_rl.envs._facts_scripts import (  # noqa: E402
    BEHAVIOURS,
    CHATS_PER_WORLD,
    DEFAULT_MIX,
    EFFICIENT,
    FRESH_WORLD_BASE,
    WORLDS,
    classify_behaviour,
    query,
    script,
    scripted_trajectories,
)

__all__ = [
    "BEHAVIOURS", "CHATS_PER_WORLD", "CLASSIC_KINDS", "DEFAULT_MIX", "EFFICIENT", "FRESH_WORLD_BASE", "KIND_SETS",
    "MAX_RESULTS", "SYSTEM_PROMPT", "TINY_SETTINGS", "WORLDS", "YEAR_KINDS", "Entity", "build_corpus",
    "build_questions", "build_world", "classify_behaviour", "load_environment", "query", "resolve_kinds", "script",
    "scripted_trajectories", "split_questions",
]

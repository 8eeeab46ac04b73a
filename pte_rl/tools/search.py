"""``search`` and ``visit`` over a local document collection, with a BM25 index (``bm25s``).

A :class:`Corpus` holds :class:`Document` records (``id``, ``title``, ``text``, ``url``), read from
JSONL with :meth:`Corpus.from_jsonl`. Ranking is bm25s's default (Lucene) BM25 over the title and the
text, English stop words removed, no stemming::

    score(q, d) = sum over query terms t in d of  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

:func:`make_search_tools` returns the two tool functions bound to a corpus. ``visit`` returns a page cut
to a budget (characters, words or tokens) with a visible marker: a long tool response is context that
every later turn prefills again, which is the cost PTE prices.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pte_rl.pricing.jsonl import FormatError, read_jsonl
from pte_rl.tools.common import ToolInputError, ToolText, truncation_marker

BudgetUnit = Literal["chars", "words", "tokens"]


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    title: str
    text: str
    url: str = ""


@dataclass(frozen=True, slots=True)
class SearchHit:
    doc_id: str
    title: str
    url: str
    score: float
    snippet: str


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s  # imported on first use: it pulls in numpy/scipy, which the rest of pte_rl.tools does not need

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


class Corpus:
    """Documents with a BM25 index; look-ups by id or url."""

    def __init__(self, documents: Iterable[Document], *, k1: float = 1.5, b: float = 0.75) -> None:
        self.documents = list(documents)
        if not self.documents:
            raise ValueError("Corpus: no documents")
        self._by_key: dict[str, Document] = {}
        for doc in self.documents:
            if doc.id in self._by_key:
                raise ValueError(f"Corpus: duplicate document id {doc.id!r}")
            self._by_key[doc.id] = doc
        for doc in self.documents:
            if doc.url:
                self._by_key.setdefault(doc.url, doc)
        tokens = _tokenize([f"{d.title}\n{d.text}" for d in self.documents])
        self._retriever = None  # stays None when no document has a searchable word
        if any(tokens):
            import bm25s

            self._retriever = bm25s.BM25(k1=k1, b=b)
            self._retriever.index(tokens, show_progress=False)
        self._lock = threading.Lock()

    @classmethod
    def from_jsonl(cls, path: str | Path, **kwargs: float) -> Corpus:
        """Read documents, one JSON object per line: ``id`` and ``text`` (strings), optional ``title``, ``url``.

        Bad lines raise :class:`pte_rl.pricing.jsonl.FormatError` (a ValueError) naming the file, line and field.
        """
        documents = []
        for line_number, record in read_jsonl(path):
            for field, required in (("id", True), ("text", True), ("title", False), ("url", False)):
                value = record.get(field)
                if (required or value is not None) and not isinstance(value, str):
                    raise FormatError(path, line_number, field, f"expected a string, got {value!r}")
            if not record["id"]:
                raise FormatError(path, line_number, "id", "expected a non-empty string")
            documents.append(Document(record["id"], record.get("title") or "", record["text"], record.get("url") or ""))
        if not documents:
            raise ValueError(f"{path}: no documents")
        return cls(documents, **kwargs)

    def __len__(self) -> int:
        return len(self.documents)

    def get(self, key: str) -> Document | None:
        """The document with this id, else with this url, else None."""
        return self._by_key.get(key.strip())

    def search(self, query: str, k: int = 5, snippet_chars: int = 200) -> list[SearchHit]:
        """The ``k`` best documents with a positive BM25 score, best first."""
        terms = _tokenize([query])[0]
        if not terms or k < 1 or self._retriever is None:
            return []
        with self._lock:
            indices, scores = self._retriever.retrieve(
                [terms], k=min(k, len(self.documents)), show_progress=False
            )
        hits = []
        for index, score in zip(indices[0].tolist(), scores[0].tolist(), strict=True):
            if score > 0:
                doc = self.documents[index]
                hits.append(
                    SearchHit(
                        doc.id, doc.title, doc.url, float(score), snippet(doc.text, terms, snippet_chars)
                    )
                )
        return hits


def snippet(text: str, terms: list[str], chars: int) -> str:
    """About ``chars`` characters of ``text`` around the first query term found (the start if none)."""
    pattern = (
        re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\b", re.IGNORECASE) if terms else None
    )
    match = pattern.search(text) if pattern else None
    start = max(0, (match.start() if match else 0) - chars // 4)
    piece = " ".join(text[start : start + chars].split())
    return ("..." if start > 0 else "") + piece + ("..." if start + chars < len(text) else "")


def cut_to_budget(
    text: str, budget: int, unit: BudgetUnit = "chars", count_tokens: Callable[[str], int] | None = None
) -> tuple[str, int]:
    """The longest prefix of ``text`` within ``budget`` units, and how many units were left out.

    ``tokens`` needs ``count_tokens`` (e.g. ``lambda s: len(tokenizer.encode(s))``); the prefix is
    found by bisection on the character length, assuming the count grows with the prefix.
    """
    if budget < 0:
        raise ValueError(f"budget: expected a non-negative count, got {budget}")
    if unit == "chars":
        return text[:budget], max(0, len(text) - budget)
    if unit == "words":
        words = list(re.finditer(r"\S+", text))
        if len(words) <= budget:
            return text, 0
        return text[: words[budget - 1].end()] if budget else "", len(words) - budget
    if unit == "tokens":
        if count_tokens is None:
            raise ValueError("cut_to_budget: unit 'tokens' needs count_tokens")
        total = count_tokens(text)
        if total <= budget:
            return text, 0
        low, high = 0, len(text)  # invariant: text[:low] fits, text[:high] does not
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if count_tokens(text[:middle]) <= budget else (low, middle)
        return text[:low], total - count_tokens(text[:low])
    raise ValueError(f"unit: expected 'chars', 'words' or 'tokens', got {unit!r}")


def render_page(
    doc: Document, budget: int, unit: BudgetUnit, count_tokens: Callable[[str], int] | None
) -> ToolText:
    """A page as the model reads it: title, url, then the text cut to the budget with a marker."""
    body, omitted = cut_to_budget(doc.text, budget, unit, count_tokens)
    header = f"# {doc.title}\n" + (f"{doc.url}\n" if doc.url else "")
    if omitted:
        unit_name = {"chars": "characters", "words": "words", "tokens": "tokens"}[unit]
        body = f"{body}\n{truncation_marker(omitted, unit_name, 'page')}"
    return ToolText(f"{header}\n{body}", truncated=bool(omitted))


def format_hits(query: str, hits: list[SearchHit]) -> str:
    if not hits:
        return f"No results for {query!r}."
    lines = []
    for rank, hit in enumerate(hits, 1):
        lines.append(f"[{rank}] id: {hit.doc_id} | {hit.title}" + (f" | {hit.url}" if hit.url else ""))
        lines.append(f"    {hit.snippet}")
    return "\n".join(lines)


def make_search_tools(
    corpus: Corpus,
    *,
    default_results: int = 5,
    max_results: int = 10,
    snippet_chars: int = 200,
    visit_budget: int = 4000,
    budget_unit: BudgetUnit = "chars",
    count_tokens: Callable[[str], int] | None = None,
) -> list[Callable[..., str]]:
    """``[search, visit]`` bound to ``corpus``: typed functions whose docstrings become their schemas.

    Args:
        corpus: the documents.
        default_results / max_results: results when ``k`` is not given / the largest ``k`` honoured.
        snippet_chars: characters of each result's snippet.
        visit_budget / budget_unit / count_tokens: how much of a page ``visit`` returns (see :func:`cut_to_budget`).
    """
    if budget_unit == "tokens" and count_tokens is None:
        raise ValueError("make_search_tools: budget_unit='tokens' needs count_tokens")
    if not 1 <= default_results <= max_results:
        raise ValueError(
            f"make_search_tools: need 1 <= default_results <= max_results, got {default_results}, {max_results}"
        )

    def search(query: str, k: int = default_results) -> str:
        hits = corpus.search(query, max(1, min(k, max_results)), snippet_chars)
        return format_hits(query, hits)

    def visit(doc: str) -> str:
        found = corpus.get(doc)
        if found is None:
            raise ToolInputError(f"no document with id or url {doc!r}; use an id from the search results")
        return render_page(found, visit_budget, budget_unit, count_tokens)

    search.__doc__ = SEARCH_DOC.format(max_results=max_results, snippet_chars=snippet_chars)
    visit.__doc__ = VISIT_DOC.format(
        budget=visit_budget, unit={"chars": "characters"}.get(budget_unit, budget_unit)
    )
    return [search, visit]


SEARCH_DOC = """Search the document collection and list the best matches with short snippets.

    Each result shows an id to pass to visit, a title and a ~{snippet_chars}-character snippet.

    Args:
        query: Keywords to search for.
        k: How many results to return (1 to {max_results}).
    """

VISIT_DOC = """Read a document from the collection by its id (or url), as listed by search.

    Returns the title and the text; pages longer than {budget} {unit} are cut, with a marker.

    Args:
        doc: The id (or url) of the document to read.
    """

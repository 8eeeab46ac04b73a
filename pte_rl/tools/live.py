"""Optional live ``search``/``visit`` backends (off by default; nothing in pte_rl needs them).

Turn them on by building the tools with :func:`make_live_search_tools` and pointing it at a
SearxNG-compatible JSON endpoint, either explicitly or through the environment:

* ``PTE_RL_SEARCH_URL``: the search endpoint, e.g. ``http://localhost:8888/search``; it is queried as
  ``GET <url>?q=<query>&format=json`` and must answer ``{"results": [{"url", "title", "content"}, ...]}``.
* ``PTE_RL_SEARCH_TIMEOUT``: seconds per HTTP request (default 10).

``visit`` then fetches the page over HTTP(S) (at most ``max_page_bytes``), turns HTML into text and
cuts it to the same budget as the local corpus. Only the standard library (``urllib``) is used.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser

from pte_rl.tools.common import ToolInputError
from pte_rl.tools.search import (
    SEARCH_DOC,
    VISIT_DOC,
    BudgetUnit,
    Document,
    SearchHit,
    format_hits,
    render_page,
)

_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML page: scripts and styles dropped, blank runs collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return " ".join(parser.title.split()), "\n".join(line for line in lines if line)


def _timeout(timeout_s: float | None) -> float:
    return timeout_s if timeout_s is not None else float(os.environ.get("PTE_RL_SEARCH_TIMEOUT", "10"))


def live_search(
    query: str, k: int = 5, *, url: str | None = None, timeout_s: float | None = None
) -> list[SearchHit]:
    """Query a SearxNG-compatible endpoint (``url`` or ``$PTE_RL_SEARCH_URL``)."""
    endpoint = url or os.environ.get("PTE_RL_SEARCH_URL")
    if not endpoint:
        raise ValueError(
            "live search: set PTE_RL_SEARCH_URL (a SearxNG-compatible JSON endpoint) or pass url="
        )
    request = (
        f"{endpoint}{'&' if '?' in endpoint else '?'}{urllib.parse.urlencode({'q': query, 'format': 'json'})}"
    )
    with urllib.request.urlopen(request, timeout=_timeout(timeout_s)) as response:
        payload = json.loads(response.read(8 * 1024 * 1024).decode("utf-8", "replace"))
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise TypeError(f"live search: {endpoint} answered without a 'results' list")
    hits = []
    for item in results[:k]:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            text = str(item.get("content") or "")
            hits.append(SearchHit(item["url"], str(item.get("title") or ""), item["url"], 0.0, text[:300]))
    return hits


def live_fetch(url: str, *, timeout_s: float | None = None, max_page_bytes: int = 2_000_000) -> Document:
    """Fetch an http(s) page as a :class:`Document` (HTML converted to text)."""
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ToolInputError(f"only http(s) urls can be visited, got {url!r}")
    with urllib.request.urlopen(url, timeout=_timeout(timeout_s)) as response:
        raw = response.read(max_page_bytes)
        charset = response.headers.get_content_charset() or "utf-8"
        kind = response.headers.get_content_type()
    text = raw.decode(charset, "replace")
    title = ""
    if kind == "text/html":
        title, text = html_to_text(text)
    return Document(url, title or url, text, url)


def make_live_search_tools(
    search_url: str | None = None,
    *,
    default_results: int = 5,
    max_results: int = 10,
    visit_budget: int = 4000,
    budget_unit: BudgetUnit = "chars",
    count_tokens: Callable[[str], int] | None = None,
    timeout_s: float | None = None,
) -> list[Callable[..., str]]:
    """``[search, visit]`` backed by the live web (see the module docstring); same schemas as the local ones."""
    endpoint = search_url or os.environ.get("PTE_RL_SEARCH_URL")
    if not endpoint:
        raise ValueError("make_live_search_tools: set PTE_RL_SEARCH_URL or pass search_url")

    def search(query: str, k: int = default_results) -> str:
        hits = live_search(query, max(1, min(k, max_results)), url=endpoint, timeout_s=timeout_s)
        return format_hits(query, hits)

    def visit(doc: str) -> str:
        return render_page(
            live_fetch(doc.strip(), timeout_s=timeout_s), visit_budget, budget_unit, count_tokens
        )

    search.__doc__ = SEARCH_DOC.format(max_results=max_results, snippet_chars=300)
    visit.__doc__ = VISIT_DOC.format(
        budget=visit_budget, unit={"chars": "characters"}.get(budget_unit, budget_unit)
    )
    return [search, visit]

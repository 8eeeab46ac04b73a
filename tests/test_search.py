"""search/visit over a local corpus (BM25 scores checked by hand), page budgets, the live backend."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from pte_rl.tools import Corpus, Document, ToolInputError, Toolset, cut_to_budget, make_search_tools
from pte_rl.tools.live import html_to_text, make_live_search_tools

DOCS = [
    {"id": "a", "title": "Alpha", "text": "apple banana apple", "url": "https://example.org/a"},
    {"id": "b", "title": "Beta", "text": "banana cherry"},
    {"id": "c", "title": "Gamma", "text": "cherry date elder fig"},
]


@pytest.fixture()
def corpus_path(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n\n", encoding="utf-8")
    return path


def lucene_bm25(tf: int, df: int, doc_len: int, n_docs: int = 3, avgdl: float = 4.0, k1=1.5, b=0.75) -> float:
    """BM25 as bm25s computes it by default (Lucene: no (k1 + 1) factor in the numerator)."""
    idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * doc_len / avgdl))


def test_bm25_scores_match_the_formula(corpus_path):
    # tokens (title + text, stop words removed): a = alpha apple banana apple (4), b = beta banana cherry (3),
    # c = gamma cherry date elder fig (5); avgdl = 12 / 3 = 4
    corpus = Corpus.from_jsonl(corpus_path)
    (hit,) = corpus.search("apple")
    assert hit.doc_id == "a" and hit.score == pytest.approx(lucene_bm25(tf=2, df=1, doc_len=4), rel=1e-5)
    hits = corpus.search("banana", k=5)
    assert [h.doc_id for h in hits] == ["b", "a"]  # the shorter document ranks first
    assert [h.score for h in hits] == pytest.approx([lucene_bm25(1, 2, 3), lucene_bm25(1, 2, 4)], rel=1e-5)
    assert corpus.search("the of and") == []  # stop words only
    assert corpus.search("zebra") == []  # no document scores above zero


def test_lookups_by_id_and_url(corpus_path):
    corpus = Corpus.from_jsonl(corpus_path)
    assert len(corpus) == 3
    assert corpus.get("a").title == "Alpha" and corpus.get(" https://example.org/a ").id == "a"
    assert corpus.get("zzz") is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"docs.jsonl:2: field '<line>': expected valid JSON"),
        ('["a"]', r"docs.jsonl:2: field '<line>': expected a JSON object"),
        ('{"text": "x"}', r"docs.jsonl:2: field 'id': expected a string"),
        ('{"id": "", "text": "x"}', r"docs.jsonl:2: field 'id': expected a non-empty string"),
        ('{"id": "z", "text": "x", "title": 3}', r"docs.jsonl:2: field 'title': expected a string"),
        ('{"id": "a", "text": "dup"}', r"duplicate document id 'a'"),
    ],
)
def test_bad_corpus_files_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps(DOCS[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Corpus.from_jsonl(path)


def test_cut_to_budget_units():
    text = "one two three four five six seven eight nine ten"
    assert cut_to_budget(text, 13, "chars") == ("one two three", len(text) - 13)
    assert cut_to_budget(text, 4, "words") == ("one two three four", 6)
    assert cut_to_budget(text, 4, "tokens", lambda s: len(s.split())) == ("one two three four ", 6)
    assert cut_to_budget(text, 100, "words") == (text, 0)
    with pytest.raises(ValueError, match="needs count_tokens"):
        cut_to_budget(text, 4, "tokens")


def test_search_and_visit_tools(corpus_path):
    corpus = Corpus.from_jsonl(corpus_path)
    search, visit = make_search_tools(corpus, visit_budget=10, snippet_chars=40)
    tools = Toolset([search, visit])
    params = tools.schema("search")["function"]["parameters"]
    assert params["required"] == ["query"] and params["properties"]["k"]["default"] == 5
    assert "1 to 10" in params["properties"]["k"]["description"]
    assert "10 characters" in tools.schema("visit")["function"]["description"]
    listing = search("banana")
    assert listing.splitlines()[0] == "[1] id: b | Beta"
    assert listing.splitlines()[2] == "[2] id: a | Alpha | https://example.org/a"
    assert "banana" in listing.splitlines()[1]
    assert search("banana", k=1).count("id:") == 1
    assert search("zebra") == "No results for 'zebra'."
    page = visit("a")
    # "apple banana apple" is 18 characters: 10 kept, 8 omitted
    assert (
        page == "# Alpha\nhttps://example.org/a\n\napple bana\n[... page truncated: 8 characters omitted ...]"
    )
    assert page.truncated
    assert visit("c") == "# Gamma\n\ncherry dat\n[... page truncated: 11 characters omitted ...]"
    with pytest.raises(ToolInputError, match="no document with id or url 'zzz'"):
        visit("zzz")


def test_documents_can_be_built_in_memory():
    corpus = Corpus([Document("x", "X", "llamas live in the andes")])
    assert [h.doc_id for h in corpus.search("andes llamas")] == ["x"]
    with pytest.raises(ValueError, match="no documents"):
        Corpus([])
    wordless = Corpus([Document("y", "", "a 1 ."), Document("z", "", "the of")])  # nothing to index
    assert wordless.search("a the") == [] and wordless.get("z").text == "the of"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/search":
            query = parse_qs(url.query)
            assert query["format"] == ["json"]
            body = json.dumps(
                {
                    "results": [
                        {
                            "url": f"http://{self.headers['Host']}/page",
                            "title": "Llamas",
                            "content": f"About {query['q'][0]}",
                        },
                    ]
                }
            ).encode()
            kind = "application/json"
        else:
            body = (
                b"<html><head><title>Llama page</title><script>var secret = 1;</script></head>"
                b"<body><h1>Llamas</h1><p>Llamas live in the Andes.</p></body></html>"
            )
            kind = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_live_backend_against_a_local_searxng_lookalike(local_server, monkeypatch):
    monkeypatch.delenv("PTE_RL_SEARCH_URL", raising=False)
    with pytest.raises(ValueError, match="PTE_RL_SEARCH_URL"):
        make_live_search_tools()
    monkeypatch.setenv("PTE_RL_SEARCH_URL", f"{local_server}/search")
    search, visit = make_live_search_tools(visit_budget=1000)
    assert Toolset([search, visit]).names == ["search", "visit"]
    listing = search("llamas")
    assert listing == f"[1] id: {local_server}/page | Llamas | {local_server}/page\n    About llamas"
    page = visit(f"{local_server}/page")
    assert page == f"# Llama page\n{local_server}/page\n\nLlamas\nLlamas live in the Andes."
    with pytest.raises(ToolInputError, match="only http"):
        visit("file:///etc/passwd")


def test_html_to_text_drops_scripts_and_styles():
    title, text = html_to_text(
        "<title> T </title><style>p{}</style><p>a  b</p><div>c</div><script>x()</script>"
    )
    assert (title, text) == ("T", "a b\nc")

"""Every relative link and ``#anchor`` in the README and docs/ resolves, and so does every backticked
repository path (``pte_rl/pricing/cost.py``): files move, and the front door must not point at nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PATH_PREFIXES = ("pte_rl", "recipes", "launch", "benchmarks", "tests", "docs")


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of a file's headings (lower case, punctuation dropped, spaces to dashes)."""
    out, in_code = set(), False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"#+\s+(.*)", line)
        if heading:
            out.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return out


def broken_links(markdown: Path) -> list[str]:
    text, bad = markdown.read_text(encoding="utf-8"), []
    for match in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = match.group(1)
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (markdown.parent / path).resolve() if path else markdown
        if not dest.exists():
            bad.append(f"missing {target}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"no heading for {target}")
    pattern = r"`((?:" + "|".join(PATH_PREFIXES) + r")/[\w./-]+)`"
    bad += [f"no such path {m.group(1)}" for m in re.finditer(pattern, text) if not (REPO / m.group(1)).exists()]
    return bad


def test_the_checker_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Top\n[ok](page.md#top) [gone](nope.md) [bad](page.md#bottom) `pte_rl/nope.py`\n")
    assert broken_links(page) == ["missing nope.md", "no heading for page.md#bottom", "no such path pte_rl/nope.py"]


@pytest.mark.parametrize("markdown", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(markdown: Path) -> None:
    assert broken_links(markdown) == []

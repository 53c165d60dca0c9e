"""The docs hold together: every relative link resolves, the README stays short, each page opens with a summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [README, REPO / "CHANGELOG.md", *PAGES]
README_MAX_LINES = 120

# [text](target) and ![alt](target), with an optional "title"; the target ends at whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = ("http://", "https://", "mailto:")


def relative_links(markdown: str) -> list[str]:
    """Link targets that name a file in the repository (no scheme, no bare #anchor), #fragment removed."""
    prose = INLINE_CODE.sub("", CODE_FENCE.sub("", markdown))
    targets = []
    for target in LINK.findall(prose):
        if target.startswith(EXTERNAL) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_the_documents_exist():
    assert README.is_file()
    assert (REPO / "CHANGELOG.md").is_file()
    names = {page.name for page in PAGES}
    expected = {
        "http-api.md",
        "s3-uploads.md",
        "cli-and-settings.md",
        "deploy.md",
        "performance.md",
        "security.md",
        "development.md",
        "bulk.md",
    }
    assert expected <= names, f"missing docs pages: {sorted(expected - names)}"


def test_link_extraction_skips_external_anchors_and_code():
    text = (
        "[a](docs/x.md#part) ![b](img.png) [c](https://example.org/y) [d](mailto:me@example.org) "
        "[e](#local) `[f](not/a/link.md)`\n```\n[g](in/a/fence.md)\n```\n"
    )
    assert relative_links(text) == ["docs/x.md", "img.png"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_resolves(document: Path):
    links = relative_links(document.read_text(encoding="utf-8"))
    broken = [link for link in links if not (document.parent / link).exists()]
    assert not broken, f"{document.relative_to(REPO)} links to missing files: {broken}"


def test_the_readme_links_every_docs_page_and_the_changelog():
    linked = {(README.parent / link).resolve() for link in relative_links(README.read_text(encoding="utf-8"))}
    unlinked = [path.name for path in [*PAGES, REPO / "CHANGELOG.md"] if path.resolve() not in linked]
    assert not unlinked, f"README.md does not link {unlinked}"


def test_the_readme_is_at_most_120_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_each_page_opens_with_a_title_and_a_two_line_summary(page: Path):
    lines = page.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 5, f"{page.name} is too short to hold a title and a summary"
    title, blank, *rest = lines
    assert title.startswith("# ") and title[2:].strip(), f"{page.name} must open with a '# Title' line"
    assert not blank.strip(), f"{page.name}: a blank line must follow the title"
    summary = []
    for line in rest:
        if not line.strip():
            break
        summary.append(line)
    assert len(summary) == 2, f"{page.name}: the summary after the title must be two lines, not {len(summary)}"
    for line in summary:
        assert not re.match(r"\s*(#|\||```|[-*+] |\d+\. |!\[)", line), (
            f"{page.name}: the summary must be plain prose, not {line!r}"
        )

"""The docs hold together: every relative link resolves, the README stays short, each page opens with a summary."""

from __future__ import annotations

import glob
import re
import shlex
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


SH_BLOCK = re.compile(r"^[ \t]*```sh\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
LOCAL_PATH = re.compile(r"^(events|tests|docs|infra)/")


def handler_commands(markdown: str) -> list[list[str]]:
    """Each ``python -m handler ...`` (or ``.venv/bin/python -m handler ...``) in the ```sh blocks, split as
    the shell would (comments dropped, ``&&`` chains apart, ``$VARS`` left as text)."""
    commands = []
    for block in SH_BLOCK.findall(markdown):
        for line in block.splitlines():
            words_in_line = shlex.split(line, comments=True)
            parts: list[list[str]] = [[]]
            for word in words_in_line:
                if word in ("&&", "||", ";", "|"):
                    parts.append([])
                else:
                    parts[-1].append(word)
            for words in parts:
                for start in range(len(words) - 2):
                    if words[start].endswith("python") and words[start + 1 : start + 3] == ["-m", "handler"]:
                        commands.append(words[start + 3 :])
    return commands


@pytest.mark.parametrize("document", [README, REPO / "docs" / "cli-and-settings.md"], ids=lambda path: path.name)
def test_the_command_examples_parse_and_name_files_that_exist(document: Path):
    """A newcomer's path: every ``python -m handler`` example is a valid command line of today's parser, and
    the repository files it names (events/..., tests/images/*.jpg) exist."""
    from handler.cli import build_parser

    commands = handler_commands(document.read_text(encoding="utf-8"))
    assert len(commands) >= 5, commands
    parser = build_parser()
    for words in commands:
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"{document.name}: `python -m handler {' '.join(words)}` does not parse")
        for word in words:
            if LOCAL_PATH.match(word):
                assert glob.glob(str(REPO / word)), f"{document.name}: {word} does not exist"


def test_the_readme_says_which_python_and_what_make_test_needs_as_root():
    text = README.read_text(encoding="utf-8")
    assert ". .venv/bin/activate" in text
    assert "chromium" in text and "root" in text

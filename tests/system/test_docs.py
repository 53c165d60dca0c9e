"""The docs hold together and say what the code does: every relative link resolves, the README stays short, each
page opens with a summary, and the statements a newcomer acts on (routes, commands and their flags, make targets,
settings, the stack's outputs) are checked against the app, the parser, the Makefile, Settings and the template."""

from __future__ import annotations

import glob
import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [README, REPO / "CHANGELOG.md", *PAGES]
README_MAX_LINES = 129

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


def test_the_readme_stays_under_130_lines():
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


def test_the_readmes_offline_commands_run_as_written(tmp_path, monkeypatch, test_model_path, segmenter):
    """The README's ``python -m handler`` examples that need no deployed stack (no ``$VARS``) run as written, in
    order, from a folder laid out like the checkout: ``segment`` writes each photo's results, ``export-coco``
    turns them into one COCO file."""
    from handler.cli import main

    (tmp_path / "tests").symlink_to(REPO / "tests")
    monkeypatch.setenv("SEG_MODEL_PATH", str(test_model_path.resolve()))  # the checkout's model, from elsewhere
    monkeypatch.chdir(tmp_path)
    ran = []
    for words in handler_commands(README.read_text(encoding="utf-8")):
        if any("$" in word for word in words):
            continue
        expanded = [found for word in words for found in (sorted(glob.glob(word)) or [word])]  # as the shell would
        assert main(expanded) == 0, f"`python -m handler {' '.join(words)}` failed"
        ran.append(words[0])
    assert ran == ["segment", "export-coco"]
    photos = sorted(path.name for path in (REPO / "tests" / "images").glob("*.jpg"))
    assert sorted(path.name for path in (tmp_path / "out").glob("*.json")) == [f"{name}.json" for name in photos]
    assert sorted(path.name for path in (tmp_path / "out").glob("*.png")) == [f"{name}.png" for name in photos]
    coco = json.loads((tmp_path / "instances.json").read_text(encoding="utf-8"))
    assert len(coco["images"]) >= len(photos) and "annotations" in coco  # the photos' (and a video's frames)


def inline_code(markdown: str) -> list[str]:
    return [span.strip("`") for span in INLINE_CODE.findall(CODE_FENCE.sub("", markdown))]


def section(markdown: str, title: str) -> str:
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`")


def test_the_readme_route_table_is_the_apps_routes():
    """Every route in the README's table answers in the app, and every route of the app is in the table."""
    from handler.api import app

    table = {
        found
        for line in section(README.read_text(encoding="utf-8"), "Routes").splitlines()
        if line.startswith("| `")
        for found in ROUTE.findall(line.split(" | ")[0])
    }
    served = {(method, route.path) for route in app.routes for method in (getattr(route, "methods", None) or ())}
    served -= {(method, path) for method, path in served if method == "HEAD"}
    assert table - served == set(), f"README.md's table names routes the app lacks: {sorted(table - served)}"
    assert served - table == set(), f"README.md's table leaves out: {sorted(served - table)}"


def cli_commands() -> dict[str, set[str]]:
    """Each ``python -m handler`` command and its option strings, from today's parser."""
    import argparse

    from handler.cli import build_parser

    (commands,) = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    return {name: set(parser._option_string_actions) for name, parser in commands.choices.items()}


@pytest.mark.parametrize("document", [README, *PAGES], ids=lambda path: path.name)
def test_every_quoted_command_and_flag_exists(document: Path):
    """``python -m handler COMMAND --flag`` quoted in prose names a command and flags that ``--help`` lists."""
    commands, wrong = cli_commands(), []
    for span in inline_code(document.read_text(encoding="utf-8")):
        found = re.search(r"python -m handler\s+([a-z][\w-]*)(.*)", span)
        if not found:
            continue
        command, rest = found.groups()
        if command not in commands:
            wrong.append(span)
            continue
        wrong += [
            f"{span} ({flag})"
            for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest)
            if flag not in commands[command]
        ]
    assert not wrong, f"{document.name} quotes commands or flags the parser does not have: {wrong}"


MAKE_TARGET = re.compile(r"^([A-Za-z][\w.-]*)\s*:(?!=)", re.MULTILINE)


@pytest.mark.parametrize("document", [README, *PAGES], ids=lambda path: path.name)
def test_every_make_target_named_exists(document: Path):
    targets = set(MAKE_TARGET.findall((REPO / "Makefile").read_text(encoding="utf-8")))
    text = document.read_text(encoding="utf-8")
    named = set(re.findall(r"`make ([a-z][\w-]*)", text)) | set(re.findall(r"^\s*make ([a-z][\w-]*)", text, re.M))
    assert named <= targets, f"{document.name} names make targets the Makefile lacks: {sorted(named - targets)}"


# Named in the docs only to say that they were removed.
REMOVED_SETTINGS = {"SEG_CHANNELS_LAST"}
SETTING = re.compile(r"\bSEG_[A-Z0-9_]*[A-Z0-9]")


def test_every_setting_named_in_the_docs_exists_and_every_setting_is_documented():
    from handler.core.settings import Settings

    settings = {f"SEG_{name.upper()}" for name in Settings.model_fields}
    for document in [README, *PAGES]:
        named = set(SETTING.findall(document.read_text(encoding="utf-8"))) - REMOVED_SETTINGS
        assert named <= settings, f"{document.name} names settings that do not exist: {sorted(named - settings)}"
    page = set(SETTING.findall((REPO / "docs" / "cli-and-settings.md").read_text(encoding="utf-8")))
    assert settings <= page, f"docs/cli-and-settings.md does not document {sorted(settings - page)}"


def test_the_readmes_deploy_step_names_the_stack_and_outputs_that_exist():
    """``make deploy``, then ``API_URL`` and ``BUCKET`` from the Outputs of the stack samconfig.toml names."""
    import tomllib

    from infra.image_spec import load_template

    text = section(README.read_text(encoding="utf-8"), "Deploy")
    outputs = set(load_template(REPO / "template.yaml")["Outputs"])
    named = set(re.findall(r"Outputs: (\w+)", text))
    assert {"ApiUrl", "InputBucketName"} <= named <= outputs, (named, sorted(outputs))
    config = tomllib.loads((REPO / "samconfig.toml").read_text(encoding="utf-8"))
    assert f"--stack-name {config['default']['global']['parameters']['stack_name']}" in " ".join(text.split())
    assert "make deploy" in text and "export API_URL=" in text and "export BUCKET=" in text


def test_what_the_readme_calls_off_by_default_is_off(client):
    from handler.core.settings import Settings

    text = " ".join(README.read_text(encoding="utf-8").split())
    assert '`{"s3_uri": ...}` (off by default: 403 unless `SEG_ALLOW_S3_URI=true`' in text
    assert Settings.model_fields["allow_s3_uri"].default is False
    response = client.post("/segment", json={"s3_uri": "s3://any-bucket/photo.jpg"})  # the default settings
    assert (response.status_code, response.json()["error"]["code"]) == (403, "s3_uri_disabled")
    assert ". .venv/bin/activate" in text  # the venv the Makefile makes:
    assert re.search(r"^VENV\s*:?=\s*\.venv$", (REPO / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)

"""The architecture rules of docs/development.md, checked on the source: who may import whom, module sizes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

HANDLER = REPO / "handler"
PARTS = ("api", "s3", "engine", "model", "cli", "core", "video")
MAX_FLAT_MODULES = 10
# What each part must never import (transport stays out of model/ and engine/; api/ and s3/ stay apart).
# One path to the model: api/, s3/ and cli/ reach it through handler.engine, never handler.model.
OTHER_PARTS = ("handler.api", "handler.s3", "handler.engine", "handler.model", "handler.cli", "handler.video")
FORBIDDEN = {
    "core": (*OTHER_PARTS, "handler.lambda_function", "handler.jobstore", "handler.snapstart", "fastapi", "mangum"),
    "api": ("handler.s3", "handler.cli", "handler.lambda_function", "handler.model"),
    "s3": ("handler.api", "handler.cli", "handler.lambda_function", "handler.model", "fastapi", "mangum"),
    "cli": ("handler.api", "handler.s3", "handler.model"),
    "engine": ("handler.api", "handler.s3", "handler.cli", "handler.core.storage", "fastapi", "mangum", "boto3"),
    "video": (
        "handler.api",
        "handler.s3",
        "handler.cli",
        "handler.lambda_function",
        "handler.model",
        "handler.core.storage",
        "fastapi",
        "mangum",
        "boto3",
    ),
    "model": (
        "handler.api",
        "handler.s3",
        "handler.engine",
        "handler.cli",
        "handler.core.storage",
        "fastapi",
        "mangum",
        "boto3",
    ),
}
MAX_LINES = 330  # "no module over ~300 lines"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(part: str) -> list[str]:
    found = []
    for path in sorted((HANDLER / part).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            if any(name == banned or name.startswith(f"{banned}.") for banned in FORBIDDEN[part]):
                found.append(f"{path.relative_to(REPO)} imports {name}")
    return found


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_parts_import_only_what_the_rules_allow(part: str) -> None:
    assert violations(part) == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from handler.s3 import events\nimport handler.api.routes\n")
    assert {"handler.s3", "handler.s3.events", "handler.api.routes"} <= imported_modules(module)


def test_only_lambda_function_knows_both_sides() -> None:
    knows_both = [
        path.relative_to(REPO).as_posix()
        for path in HANDLER.rglob("*.py")
        if {"api", "s3"}
        <= {name.split(".")[1] for name in imported_modules(path) if name.startswith("handler.") and "." in name}
    ]
    assert knows_both == ["handler/lambda_function.py"]


@pytest.mark.parametrize("part", PARTS)
def test_each_part_says_what_it_is_and_exports_its_names(part: str) -> None:
    init = HANDLER / part / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.split()) >= 12, f"{init} needs a docstring saying what the part does"
    exported = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
    ]
    assert part == "cli" or exported, f"{init} must re-export its public names in __all__"


def test_no_module_is_over_about_300_lines() -> None:
    long = {
        path.relative_to(REPO).as_posix(): count
        for folder in ("handler", "infra")
        for path in (REPO / folder).rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_test_modules_have_unique_names() -> None:
    """pytest imports test modules by basename (no packages under tests/): two alike stop the whole collection."""
    names = [path.name for path in (REPO / "tests").rglob("test_*.py")]
    assert sorted({name for name in names if names.count(name) > 1}) == []


def handler_modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
        for path in HANDLER.rglob("*.py")
    }


def import_graph() -> dict[str, set[str]]:
    """Each handler module and the handler modules it imports, at any depth of its code (function bodies too)."""
    modules = handler_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_modules(path):
            # "from handler import api" names a module; "from handler.core.settings import get_settings" does not.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "handler":
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_in_handler() -> None:
    assert cycles(import_graph()) == []


def test_the_circle_finder_sees_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_handler_never_imports_dev_tooling() -> None:
    """The image ships handler/ only: infra/, tests/ and bench/ are not there."""
    found = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted(HANDLER.rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name.split(".")[0] in {"infra", "tests", "bench", "conftest"}
    ]
    assert found == []


def test_handler_top_level_shows_entry_points_and_parts() -> None:
    flat = sorted(path.name for path in HANDLER.glob("*.py"))
    assert len(flat) <= MAX_FLAT_MODULES, flat

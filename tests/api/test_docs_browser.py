"""``/docs`` (Swagger UI) in headless Chromium with every request off this machine refused: the page comes
from the package (no CDN), shows every operation of the schema, and breaks no rule of its security policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect
from test_page_browser import browser, free_port, serve  # noqa: F401 (browser: the shared fixture)

pytestmark = pytest.mark.browser
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def docs_server(test_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(test_model_path, tmp_path_factory.mktemp("docs") / "serve.log", free_port()) as url:
        yield url


def offline_page(browser: Browser) -> tuple[Page, list[str], list[str]]:  # noqa: F811
    """A page whose requests beyond this machine are aborted (and listed), with its console errors (CSP
    violations among them) and page errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    problems: list[str] = []

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return page, outside, problems


def operations(server: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{server}/openapi.json", timeout=30).json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


def test_swagger_ui_shows_every_operation_offline(browser: Browser, docs_server: str) -> None:  # noqa: F811
    page, outside, problems = offline_page(browser)
    response = page.goto(f"{docs_server}/docs")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    expected = operations(docs_server)
    assert ("POST", "/segment") in expected and ("GET", "/healthz") in expected
    for method, path in expected:
        summary = page.locator(f".opblock-{method.lower()} .opblock-summary-path[data-path='{path}']")
        expect(summary).to_be_visible(timeout=30_000)
    assert page.locator(".opblock").count() == len(expected)
    page.locator(".opblock-post .opblock-summary-path[data-path='/segment']").click()
    expect(page.locator(".opblock-body").first).to_contain_text("masks")  # the query parameters, expanded
    assert outside == [] and problems == []
    page.close()

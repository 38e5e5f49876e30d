"""``/docs`` in Chromium: Swagger UI renders the API's operations with every request to this server
(it loaded from cdn.jsdelivr.net and was blank offline)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.dashboard.conftest import Browser

pytestmark = pytest.mark.slow


def test_the_api_reference_renders_from_this_server_alone(browser: Browser) -> None:
    page = browser.page
    own = urlsplit(browser.server.url).netloc
    elsewhere: list[str] = []
    page.on("request", lambda r: urlsplit(r.url).netloc not in (own, "") and elsewhere.append(r.url))
    browser.goto("/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="Trivue").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/streets").first.wait_for()
    assert page.locator(".opblock").count() > 40
    assert elsewhere == []
    browser.shot("api-docs")

"""The Annotation page when the server fails it: a refusal's code and values reach the page through
``Trivue.api`` (app.js), and a next photo that does not come is said, in French, with a retry."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from server.web.accounts import User
from server.web.auth import add_user
from tests.dashboard.conftest import Browser, LiveServer
from tests.dashboard.seed import PASSWORD
from tests.dashboard.test_annotation import ANNOTATOR, publish_photos

REFUSAL = """async ([path, body]) => {
  try {
    await Trivue.api(path, null, { method: "POST", body, headers: { "Content-Type": "application/json" } });
    return null;
  } catch (error) {
    return { api: error instanceof Trivue.ApiError, status: error.status, message: error.message,
             code: error.code, params: error.params };
  }
}"""


@pytest.fixture
def annotatrice(live_server: LiveServer) -> str:
    with live_server.sessions() as db:
        if not db.scalar(select(User).where(User.name == ANNOTATOR)):
            add_user(db, ANNOTATOR, PASSWORD, "annotator")
            db.commit()
    return ANNOTATOR


def photos(shared_dir: Path, first: int) -> list[Path]:
    return sorted((shared_dir / "datasets" / "litter-items" / "images" / "val").glob("*.jpg"))[first : first + 2]


def test_api_errors_carry_a_refusals_code_and_values(
    browser: Browser, live_server: LiveServer, annotatrice: str, shared_dir: Path
) -> None:
    """``Trivue.api`` kept only the English ``detail``: the Annotation page had to fetch decisions on
    its own to word a refusal in French."""
    truck = f"benne-annf-{uuid.uuid4().hex[:6]}"
    first, _second = publish_photos(live_server, truck, photos(shared_dir, 21))
    page = browser.page
    browser.login(annotatrice, path=f"/annotation?truck_id={truck}")
    page.wait_for_selector("#ann-box-list li[data-box-id='2']")
    decisions = f"/api/labels/photos/{first}/decisions"
    coded = page.evaluate(REFUSAL, [decisions, '{"action": "move", "box_id": 1, "class": "unicorn"}'])
    assert coded == {
        "api": True,
        "status": 422,
        "message": coded["message"],
        "code": "unknown_class",
        "params": {"class": "unicorn"},
    }
    assert "unicorn" in coded["message"]  # the English sentence stays the message
    # a request of the wrong shape: FastAPI's field errors, no code
    shape = page.evaluate(REFUSAL, [decisions, '{"action": "move", "box_id": 1, "x1": 7}'])
    assert (shape["status"], shape["code"], shape["params"]) == (422, None, {})
    assert shape["message"].startswith("[{")
    browser.expected += [
        "console: Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ] * 2


def test_a_next_photo_that_does_not_come_is_said_with_a_retry(
    browser: Browser, live_server: LiveServer, annotatrice: str, shared_dir: Path
) -> None:
    """Enter finished the photo, then the next one failed to load (a 5xx, no network): an unhandled
    rejection, the page stuck on the finished photo, silent. Now it says so in French, the keys keep
    working (Page Down tries again) and a button retries."""
    truck = f"benne-annf-{uuid.uuid4().hex[:6]}"
    first, second = publish_photos(live_server, truck, photos(shared_dir, 23))
    page = browser.page
    status, retry = page.locator("#ann-status"), page.locator("#ann-retry")
    browser.login(annotatrice, path=f"/annotation?truck_id={truck}")
    page.wait_for_selector("#ann-box-list li[data-box-id='2']")
    assert retry.is_hidden()
    photo = f"**/api/labels/photos/{second}"
    page.route(photo, lambda route: route.fulfill(status=503, json={"detail": "database unavailable"}))
    page.locator("#ann-stage").focus()
    with page.expect_response(lambda r: r.url.endswith(f"/api/labels/photos/{second}")):
        page.keyboard.press("Enter")
    browser.expected.append(
        "console: Failed to load resource: the server responded with a status of 503 (Service Unavailable)"
    )
    page.wait_for_function("document.querySelector('#ann-status').textContent.startsWith('Photo suivante')")
    assert status.inner_text() == (
        "Photo suivante introuvable : le serveur a répondu par une erreur 503. "
        "La photo affichée reste ouverte ; réessayez."
    )
    assert retry.is_visible() and retry.inner_text() == "Réessayer"
    assert live_server.api(f"/api/labels/photos/{first}")["status"] == "done"
    browser.shot("annotation-next-failed")

    # No network now: Page Down (the keyboard still answers) tries again, and says so.
    page.unroute(photo)
    page.route(photo, lambda route: route.abort())
    page.locator("#ann-stage").focus()
    page.keyboard.press("PageDown")
    browser.expected.append("console: Failed to load resource: net::ERR_FAILED")
    page.wait_for_function("document.querySelector('#ann-status').textContent.includes('réseau')")
    assert status.inner_text() == (
        "Photo suivante introuvable : le serveur ne répond pas (réseau). La photo affichée reste ouverte ; réessayez."
    )

    # Back: the retry button, from the keyboard, brings the next photo and clears the message.
    page.unroute(photo)
    retry.focus()
    with page.expect_response(lambda r: r.url.endswith(f"/api/labels/photos/{second}")):
        page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#ann-position').textContent === '1 sur 1'")
    retry.wait_for(state="hidden")  # once the step is over, just after the photo is drawn
    assert status.inner_text() == ""
    page.wait_for_selector("#ann-box-list li[data-box-id='2']")
    page.locator("#ann-stage").focus()
    with page.expect_response(lambda r: r.url.endswith(f"/api/labels/photos/{second}/decisions")):
        page.keyboard.press("Enter")  # and the keys work on it
    assert live_server.api(f"/api/labels/photos/{second}")["status"] == "done"

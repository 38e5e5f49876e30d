"""Ctrl+Z right after Enter (or U) takes the finish back and shows that photo again. Before, the page
had moved on to the next photo, Ctrl+Z answered "Rien à annuler" there, and the photo finished by
mistake (its boxes left "to check" accepted, into the export) had left the queue "À annoter": only
the status filter found it again."""

from __future__ import annotations

from pathlib import Path

from tests.dashboard import test_annotation
from tests.dashboard.conftest import Browser, LiveServer
from tests.dashboard.test_annotation import open_queue, server_boxes

annotator = test_annotation.annotator  # the fixture


def test_ctrl_z_after_a_finish_takes_it_back_and_shows_the_photo_again(
    browser: Browser,
    live_server: LiveServer,
    annotator: str,
    shared_dir: Path,
) -> None:
    first, second, _third = open_queue(browser, live_server, annotator, shared_dir, 16, 3)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#ann-stage canvas")
    page.locator("#ann-stage").focus()
    with page.expect_response(lambda r: r.request.method == "GET" and r.url.endswith(f"/api/labels/photos/{second}")):
        page.keyboard.press("Enter")  # by mistake: the bottle box was still to check
    page.wait_for_function("document.querySelector('#ann-progress').textContent.startsWith('1 photo')")
    with page.expect_response(lambda r: r.request.method == "GET" and r.url.endswith(f"/api/labels/photos/{first}")):
        page.keyboard.press("Control+z")
    page.wait_for_function("document.querySelector('#ann-progress').textContent.startsWith('0 photo')")
    assert page.locator("#ann-position").inner_text() == "1 sur 3"
    assert live_server.api(f"/api/labels/photos/{first}")["status"] == "todo"
    assert [b["state"] for b in server_boxes(live_server, first)] == ["pending", "pending"]
    assert [li["state"] for li in page.eval_on_selector_all("#ann-box-list li", "l => l.map(e => e.dataset)")] == [
        "pending",
        "pending",
    ]

    # On the next photo, a decision of its own comes first: Ctrl+Z takes back that one, and stays there.
    with page.expect_response(lambda r: r.request.method == "GET" and r.url.endswith(f"/api/labels/photos/{second}")):
        page.keyboard.press("u")
    page.keyboard.press("]")
    with page.expect_response(lambda r: r.url.endswith("/decisions")):
        page.keyboard.press("a")
    with page.expect_response(lambda r: r.url.endswith("/decisions")) as undo:
        page.keyboard.press("Control+z")
    assert undo.value.url.endswith(f"/api/labels/photos/{second}/decisions")
    assert page.locator("#ann-position").inner_text() == "1 sur 2"
    assert live_server.api(f"/api/labels/photos/{first}")["status"] == "unusable"
    assert [b["state"] for b in server_boxes(live_server, second)] == ["pending", "pending"]
    with page.expect_response(lambda r: r.request.method == "GET" and r.url.endswith(f"/api/labels/photos/{first}")):
        page.keyboard.press("Control+z")  # nothing left of its own: the unusable photo comes back
    assert live_server.api(f"/api/labels/photos/{first}")["status"] == "todo"
    assert page.locator("#ann-status").inner_text() == "Enregistré."


def test_ctrl_z_after_the_queue_s_last_photo_brings_it_back(
    browser: Browser, live_server: LiveServer, annotator: str, shared_dir: Path
) -> None:
    (only,) = open_queue(browser, live_server, annotator, shared_dir, 19, 1)
    page = browser.page
    page.wait_for_selector("#ann-stage canvas")
    with page.expect_response(lambda r: r.url.endswith("/api/labels/queue") or "/api/labels/queue?" in r.url):
        page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#ann-progress').textContent.startsWith('1 photo')")
    assert page.locator("#ann-box-list li").count() == 0  # nothing left to label
    with page.expect_response(lambda r: r.request.method == "GET" and r.url.endswith(f"/api/labels/photos/{only}")):
        page.keyboard.press("Control+z")
    assert live_server.api(f"/api/labels/photos/{only}")["status"] == "todo"
    assert page.locator("#ann-position").inner_text() == "1 sur 1"

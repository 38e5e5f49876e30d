"""Ctrl+Z right after Enter (or U) takes the finish back and shows that photo again. Before, the page
had moved on to the next photo, Ctrl+Z answered "Rien à annuler" there, and the photo finished by
mistake (its boxes left "to check" accepted, into the export) had left the queue "À annoter": only
the status filter found it again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Route

from tests.dashboard import test_annotation
from tests.dashboard.conftest import Browser, LiveServer
from tests.dashboard.test_annotation import open_queue, press_at_once, server_boxes

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
    page.keyboard.press("u")
    # The keys below act on the photo drawn: until the second shows, the first (just finished) stays.
    page.wait_for_selector(f"#ann-stage[data-photo='{second}']")
    page.keyboard.press("]")
    with page.expect_response(lambda r: r.url.endswith("/decisions")):
        page.keyboard.press("a")
    # The page counts the decision once it has drawn the answer, a moment after the response: a
    # Ctrl+Z pressed in between (a loaded machine) took back the finish of the first photo instead.
    page.wait_for_selector("#ann-box-list li[data-state=accepted]")
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


@pytest.mark.parametrize("keys", [("Enter",), ("ArrowRight", "Enter")], ids=["enter", "arrow-then-enter"])
def test_ctrl_z_before_the_finish_is_answered_stays_on_the_photo(
    browser: Browser, live_server: LiveServer, annotator: str, shared_dir: Path, keys: tuple[str, ...]
) -> None:
    """Ctrl+Z pressed within a tenth of a second of Enter, before the server had answered it (and, after an
    arrow, before the move Enter saves first was): the finish was taken back (or the move, and the finish
    kept), but the page then went on to the next photo, as if the photo had been finished."""
    first, second = open_queue(browser, live_server, annotator, shared_dir, 32)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#ann-stage canvas")
    held: list[Route] = []  # each decision, kept from the server until the test lets it go
    page.route("**/decisions", lambda route: held.append(route))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if request.method == "GET" else None)
    answered: list[str] = []
    page.on(
        "response",
        lambda r: (
            answered.append(json.loads(r.request.post_data or "{}").get("action"))
            if r.url.endswith("/decisions")
            else None
        ),
    )
    page.locator("#ann-box-list button[data-box='1']").click()  # the arrow moves the bag's box
    page.locator("#ann-stage").focus()
    press_at_once(browser, *keys)  # the arrow and Enter within the pause that saves arrows
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(10)
    page.keyboard.press("Control+z")  # the first decision Enter sends is not answered yet
    while "undo" not in answered and time.monotonic() < deadline:  # each decision answered as it comes
        if held:
            held.pop(0).continue_()
        page.wait_for_timeout(10)
    assert "undo" in answered, answered
    # Going on, the page asked for the queue as the undo went out (that request is seen by now), then for the
    # next photo once the undo was answered: a second for it to show, should it come.
    page.wait_for_timeout(1000)
    assert page.locator("#ann-position").inner_text() == "1 sur 2"
    assert not [url for url in asked if f"/api/labels/photos/{second}" in url or "/api/labels/queue" in url]
    assert live_server.api(f"/api/labels/photos/{first}")["status"] == "todo"
    assert page.locator("#ann-progress").inner_text().startswith("0 photo")
    assert page.locator("#ann-status").inner_text() == "Enregistré."
    moved = "ArrowRight" in keys
    bag = server_boxes(live_server, first)[0]  # the arrow's move kept (a move accepts the box): only the finish undone
    assert bag["x1"] == pytest.approx(0.11 if moved else 0.1, abs=1e-6)
    states = ["accepted" if moved else "pending", "pending"]
    assert [b["state"] for b in server_boxes(live_server, first)] == states
    assert [li["state"] for li in page.eval_on_selector_all("#ann-box-list li", "l => l.map(e => e.dataset)")] == states


def test_keys_pressed_while_the_next_photo_loads_leave_the_finished_photo_alone(
    browser: Browser, live_server: LiveServer, annotator: str, shared_dir: Path
) -> None:
    """U, then ] and A at once: the next photo was still on its way, the finished one still drawn, and A
    accepted a box of the photo just marked unusable. Those keys now wait for the next photo; Ctrl+Z
    still takes the finish back meanwhile."""
    first, second = open_queue(browser, live_server, annotator, shared_dir, 40)
    page = browser.page
    # the next photo's image, kept until the keys are pressed
    held, decisions, _ = unusable_while_holding(browser, first, f"**/api/labels/photos/{second}/photo.jpg")
    assert held, "the next photo's image was never asked for"
    assert page.locator("#ann-stage").get_attribute("aria-busy") == "true"  # dimmed: the keys wait
    page.keyboard.press("]")
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)  # a decision the keys sent would be on its way by now
    assert decisions == [f"{live_server.url}/api/labels/photos/{first}/decisions"]  # the U alone
    assert [b["state"] for b in server_boxes(live_server, first)] == ["pending", "pending"]
    held.pop().continue_()
    page.wait_for_selector(f"#ann-stage[data-photo='{second}']")
    assert page.locator("#ann-stage").get_attribute("aria-busy") == "false"
    page.keyboard.press("]")
    with page.expect_response(lambda r: r.url.endswith(f"/api/labels/photos/{second}/decisions")):
        page.keyboard.press("a")
    page.wait_for_selector("#ann-box-list li[data-state=accepted]")
    assert live_server.api(f"/api/labels/photos/{first}")["status"] == "unusable"


def test_a_move_clicked_while_the_next_photo_loads_keeps_the_finished_photo_waiting(
    browser: Browser, live_server: LiveServer, annotator: str, shared_dir: Path
) -> None:
    """U, then « Suivante » clicked before the next photo came: the finish's own load, overtaken, ended
    first and let the keys act again on the photo still drawn, the one just finished, while the click's
    load was on its way: ] and A accepted one of its boxes. The keys wait for the photo the click loads."""
    first, second = open_queue(browser, live_server, annotator, shared_dir, 40)
    page = browser.page
    # the finish's request for the next photo, then the click's
    held, decisions, deadline = unusable_while_holding(browser, first, f"**/api/labels/photos/{second}")
    page.locator("#ann-next").click()
    while len(held) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(10)
    assert len(held) == 2, "the click never asked for the next photo"
    held[0].continue_()  # the finish's load, overtaken by the click's: its answer is dropped
    page.wait_for_timeout(300)
    assert page.locator("#ann-stage").get_attribute("aria-busy") == "true"  # still the finished photo, waiting
    page.locator("#ann-stage").focus()
    page.keyboard.press("]")
    page.keyboard.press("a")
    page.wait_for_timeout(500)  # a decision the keys sent would be on its way by now
    assert decisions == [f"{live_server.url}/api/labels/photos/{first}/decisions"]  # the U alone
    assert [b["state"] for b in server_boxes(live_server, first)] == ["pending", "pending"]
    held[1].continue_()
    page.wait_for_selector(f"#ann-stage[data-photo='{second}']")
    assert page.locator("#ann-stage").get_attribute("aria-busy") == "false"


def unusable_while_holding(browser: Browser, photo: str, held_url: str) -> tuple[list[Route], list[str], float]:
    """``photo`` shown, U pressed while each request to ``held_url`` is kept from the server, until the
    first is: those requests (to be let go by the test), the decisions sent, the deadline waited to."""
    page = browser.page
    page.wait_for_selector(f"#ann-stage[data-photo='{photo}']")
    held: list[Route] = []
    page.route(held_url, lambda route: held.append(route))
    decisions: list[str] = []
    page.on("request", lambda r: decisions.append(r.url) if r.url.endswith("/decisions") else None)
    page.locator("#ann-stage").focus()
    page.keyboard.press("u")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(10)
    return held, decisions, deadline

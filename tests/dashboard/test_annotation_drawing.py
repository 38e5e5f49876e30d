"""Drawing a box with the mouse (D, or "Dessiner un cadre") on the Annotation page: a drag is a new box
wherever it starts on the photo, and a drag released outside the photo ends there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.dashboard import test_annotation
from tests.dashboard.conftest import Browser, LiveServer
from tests.dashboard.test_annotation import open_queue, server_boxes

annotator = test_annotation.annotator  # the fixture

HANDLE = """name => { const a = Konva.stages[0].findOne("." + name);
  if (!a || !Konva.stages[0].findOne("Transformer").nodes().length) return null;
  const b = a.getClientRect(); return { x: b.x + b.width / 2, y: b.y + b.height / 2 }; }"""


def _posts(page: Any) -> list[dict[str, Any]]:
    posts: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: r.method == "POST" and r.url.endswith("/decisions") and posts.append(json.loads(r.post_data)),
    )
    return posts


def test_in_draw_mode_a_drag_from_the_selected_box_s_handle_draws_a_box(
    browser: Browser,
    live_server: LiveServer,
    annotator: str,
    shared_dir: Path,
) -> None:
    """Before, the selected box kept its handles in draw mode: a drag from one (24 px wide now) resized
    that box instead of drawing the new one, and draw mode stayed on."""
    first, _second = open_queue(browser, live_server, annotator, shared_dir, 20)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#ann-stage canvas")
    posts = _posts(page)
    page.locator("#ann-box-list button[data-box='2']").click()
    corner = page.evaluate(HANDLE, "top-left")
    page.locator("#ann-draw").click()
    assert page.evaluate(HANDLE, "top-left") is None, "the selected box's handles stay in draw mode"
    canvas = page.locator("#ann-stage canvas").last.bounding_box()
    x, y = canvas["x"] + corner["x"], canvas["y"] + corner["y"]
    with page.expect_response(lambda r: r.url.endswith("/decisions")):
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x - 60, y - 60, steps=6)
        page.mouse.up()
    assert [p["action"] for p in posts] == ["add"]
    bottle = next(b for b in server_boxes(live_server, first) if b["id"] == 2)
    assert (bottle["x1"], bottle["y1"], bottle["state"]) == (0.55, 0.5, "pending")  # untouched
    assert page.locator("#ann-draw").get_attribute("aria-pressed") == "false"
    page.locator("#ann-box-list button[data-box='2']").click()
    assert page.evaluate(HANDLE, "top-left") is not None  # out of draw mode, its handles are back
    page.locator("#ann-stage").focus()
    page.keyboard.press("d")
    assert page.locator("#ann-draw").get_attribute("aria-pressed") == "true"
    page.keyboard.press("Escape")  # changed one's mind: Escape leaves draw mode, as D again does
    assert page.locator("#ann-draw").get_attribute("aria-pressed") == "false"


def test_a_drawing_released_outside_the_photo_ends_there(
    browser: Browser,
    live_server: LiveServer,
    annotator: str,
    shared_dir: Path,
) -> None:
    """Before, a drag released outside the photo left the new box hanging on the pointer, and the next
    click anywhere on the photo saved it there."""
    first, _second = open_queue(browser, live_server, annotator, shared_dir, 22)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#ann-stage canvas")
    page.locator("#ann-draw").click()
    canvas = page.locator("#ann-stage canvas").last.bounding_box()
    x, y = canvas["x"] + 0.6 * canvas["width"], canvas["y"] + 40
    with page.expect_response(lambda r: r.url.endswith("/decisions")):
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 0.5 * canvas["width"], y + 80, steps=10)  # past the photo's right edge
        page.mouse.up()
    added = next(b for b in server_boxes(live_server, first) if b["id"] == 3)
    assert 0.59 < added["x1"] < 0.61
    assert added["x2"] > 0.95  # up to the edge the pointer left by
    assert page.locator("#ann-draw").get_attribute("aria-pressed") == "false"
    page.mouse.move(canvas["x"] + 100, canvas["y"] + 300, steps=4)  # nothing follows the pointer now
    drafts = "Konva.stages[0].find('Rect').filter(r => !r.name() && !r.fill()).length"
    assert page.evaluate(drafts) == 0

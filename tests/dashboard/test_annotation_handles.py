"""The resize handles of a selected box on the Annotation page are targets of at least 24 by 24 CSS
pixels (WCAG 2.5.8), while they stay small on the photo: Konva's were 10 px, missed by a finger on
the depot's tablets and by a laptop's touchpad."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboard import test_annotation
from tests.dashboard.conftest import Browser, LiveServer
from tests.dashboard.test_annotation import open_queue, server_boxes

annotator = test_annotation.annotator  # the fixture

TARGET = 24  # CSS px, WCAG 2.5.8 (target size, minimum)

# Each handle of the selected box: its drawn size, and whether every point of a TARGET square around
# its centre (its edges just inside) reaches it, as Konva's own hit test sees the photo.
HANDLES = """target => {
  const stage = Konva.stages[0];
  const half = target / 2 - 0.5;
  return stage.find("._anchor").filter((a) => a.visible()).map((anchor) => {
    const box = anchor.getClientRect();
    const x = box.x + box.width / 2, y = box.y + box.height / 2;
    const corners = [[-half, -half], [half, -half], [-half, half], [half, half], [0, -half], [0, half],
                     [-half, 0], [half, 0]];
    const missed = corners.filter(([dx, dy]) => stage.getIntersection({ x: x + dx, y: y + dy }) !== anchor);
    return { name: anchor.name().split(" ")[0], drawn: Math.max(box.width, box.height), x, y, missed };
  });
}"""


def test_a_box_s_handles_are_24_px_targets_and_a_drag_near_one_resizes(
    browser: Browser,
    live_server: LiveServer,
    annotator: str,
    shared_dir: Path,
) -> None:
    first, _second = open_queue(browser, live_server, annotator, shared_dir, 14)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#ann-stage canvas")
    page.locator("#ann-box-list button[data-box='2']").click()  # the model's bottle: its handles show
    handles = page.evaluate(HANDLES, TARGET)
    assert len(handles) == 8, handles
    for handle in handles:
        assert handle["missed"] == [], f"{handle['name']}: a {TARGET} px target misses its handle there"
        assert handle["drawn"] <= 14, f"{handle['name']} drawn {handle['drawn']} px: it hides the photo"
    browser.shot("annotation-handles")

    # A mouse pressed 10 px off the top-left handle's centre (outside its drawing) and dragged: a resize.
    before = next(b for b in server_boxes(live_server, first) if b["id"] == 2)
    corner = next(h for h in handles if h["name"] == "top-left")
    canvas = page.locator("#ann-stage canvas").last.bounding_box()
    x, y = canvas["x"] + corner["x"] - 10, canvas["y"] + corner["y"] - 10
    with page.expect_response(lambda r: r.url.endswith("/decisions")):
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 30, y + 20, steps=6)
        page.mouse.up()
    after = next(b for b in server_boxes(live_server, first) if b["id"] == 2)
    assert (after["x2"], after["y2"]) == pytest.approx((before["x2"], before["y2"]), abs=1e-3)  # resized, not moved
    assert after["x1"] == pytest.approx(before["x1"] + 30 / canvas["width"], abs=0.005)
    assert after["y1"] == pytest.approx(before["y1"] + 20 / canvas["height"], abs=0.005)


def test_the_whole_photo_fits_a_laptop_s_screen(
    browser: Browser,
    live_server: LiveServer,
    annotator: str,
    shared_dir: Path,
) -> None:
    """On a 1366 × 768 laptop (about 650 px of page), the photo was drawn up to 1100 px wide: its bottom,
    often where the bags lie, was off the screen while the keyboard moved a box there, unseen."""
    browser.page.set_viewport_size({"width": 1366, "height": 650})
    open_queue(browser, live_server, annotator, shared_dir, 24)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#ann-stage canvas")
    page.locator("#ann-stage").focus()  # Tab or a click there: the stage scrolls into view
    canvas = page.locator("#ann-stage canvas").last.bounding_box()
    assert canvas["y"] > -1 and canvas["y"] + canvas["height"] <= 651, canvas
    assert canvas["height"] >= 500  # still as large as the screen allows

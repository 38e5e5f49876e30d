"""The resize handles of a selected box on the Annotation page are targets of at least 24 by 24 CSS
pixels (WCAG 2.5.8), while they stay small on the photo: Konva's were 10 px, missed by a finger on
the depot's tablets and by a laptop's touchpad."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.dashboard import test_annotation
from tests.dashboard.conftest import Browser, LiveServer
from tests.dashboard.seed import PASSWORD
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


def drag(page: Page, x: float, y: float, dx: float, dy: float, steps: int = 6) -> None:
    """A mouse press at (x, y) moved by (dx, dy), waiting for the decision it saves and for the page to
    have drawn the answer: drawing it rebuilds the boxes and their handles, which a next drag begun
    before then would lose."""
    with page.expect_response(lambda r: r.url.endswith("/decisions")) as answer:
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + dx, y + dy, steps=steps)
        page.mouse.up()
    page.wait_for_function(DRAWN, arg=answer.value.json()["boxes"])


DRAWN = """boxes => boxes.every((b) => {
  const li = document.querySelector(`#ann-box-list li[data-box-id='${b.id}']`);
  return li && ["x1", "y1", "x2", "y2"].every((k) => li.dataset[k] === b[k].toFixed(4)) && li.dataset.state === b.state;
})"""


def add_box(live_server: LiveServer, annotator: str, photo: str, label: str, width: float, height: float,
            canvas: dict[str, float], at: tuple[float, float] = (0.3, 0.3)) -> None:
    """A box of ``width`` by ``height`` CSS px with its top-left corner ``at`` (fractions of the photo,
    (0.3, 0.3) unless told), added through the API."""
    with httpx.Client(base_url=live_server.url, timeout=10, headers={"Origin": live_server.url}) as client:
        client.post("/api/login", json={"name": annotator, "password": PASSWORD}).raise_for_status()
        x, y = at
        corner = {"x1": x, "y1": y, "x2": x + width / canvas["width"], "y2": y + height / canvas["height"]}
        client.post(f"/api/labels/photos/{photo}/decisions",
                    json={"action": "add", "class": label, **corner}).raise_for_status()


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
    drag(page, canvas["x"] + corner["x"] - 10, canvas["y"] + corner["y"] - 10, 30, 20)
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


SMALL = 20  # CSS px: a can or a lighter far from the truck's camera

# The name of the node a press at the selected box's centre reaches, as Konva's own hit test sees it.
CENTRE_HIT = """id => {
  const stage = Konva.stages[0];
  const box = stage.findOne(`.box-${id}`).getClientRect();
  const hit = stage.getIntersection({ x: box.x + box.width / 2, y: box.y + box.height / 2 });
  return hit && hit.name();
}"""


def test_a_small_box_is_dragged_by_its_middle_and_resized_by_its_corners(
    browser: Browser,
    live_server: LiveServer,
    annotator: str,
    shared_dir: Path,
) -> None:
    """On a box under about 30 px, the 8 handles' 26 px targets covered the whole box: a press anywhere
    on it resized it, and only the keyboard could move it."""
    first, _second = open_queue(browser, live_server, annotator, shared_dir, 30)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    canvas = page.locator("#ann-stage canvas").last.bounding_box()
    width, height = canvas["width"], canvas["height"]
    add_box(live_server, annotator, first, "bottle", SMALL, SMALL, canvas)
    page.reload()
    page.wait_for_selector("#ann-box-list button[data-box='3']").click()
    assert page.evaluate(CENTRE_HIT, 3) == "box-3", "a press at the small box's middle does not reach it"
    handles = page.evaluate(HANDLES, TARGET)
    assert {h["name"] for h in handles} >= {"top-left", "top-right", "bottom-left", "bottom-right"}, handles
    for handle in handles:
        assert handle["missed"] == [], f"{handle['name']}: a {TARGET} px target misses its handle there"
    browser.shot("annotation-small-box")

    # Dragged by its middle: moved 30 px right and 20 down, its size kept.
    before = next(b for b in server_boxes(live_server, first) if b["id"] == 3)
    x = canvas["x"] + (before["x1"] + before["x2"]) / 2 * width
    y = canvas["y"] + (before["y1"] + before["y2"]) / 2 * height
    drag(page, x, y, 30, 20)
    moved = next(b for b in server_boxes(live_server, first) if b["id"] == 3)
    for side, step in (("x1", 30 / width), ("x2", 30 / width), ("y1", 20 / height), ("y2", 20 / height)):
        assert moved[side] == pytest.approx(before[side] + step, abs=0.003), (side, before, moved)

    # Its bottom-right handle still resizes it: 10 px wider and taller, its top-left corner kept.
    page.wait_for_selector("#ann-box-list button[data-box='3']").click()
    corner = next(h for h in page.evaluate(HANDLES, TARGET) if h["name"] == "bottom-right")
    # off the handle's drawing, in its target
    drag(page, canvas["x"] + corner["x"] + 5, canvas["y"] + corner["y"] + 5, 10, 10, steps=4)
    resized = next(b for b in server_boxes(live_server, first) if b["id"] == 3)
    assert (resized["x1"], resized["y1"]) == pytest.approx((moved["x1"], moved["y1"]), abs=1e-3)
    assert resized["x2"] == pytest.approx(moved["x2"] + 10 / width, abs=0.003)
    assert resized["y2"] == pytest.approx(moved["y2"] + 10 / height, abs=0.003)


@pytest.mark.parametrize("size", [(30, 30), (44, 44), (200, 14), (14, 120), (6, 6)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_small_or_thin_box_keeps_its_middle_and_24_px_corner_targets(
    browser: Browser, live_server: LiveServer, annotator: str, shared_dir: Path, size: tuple[int, int]
) -> None:
    """Whatever its shape, a box's middle takes a press (a drag moves it), its four corners stay 24 px
    targets, and no handle's target hides another's."""
    (first,) = open_queue(browser, live_server, annotator, shared_dir, 34, 1)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    canvas = page.locator("#ann-stage canvas").last.bounding_box()
    add_box(live_server, annotator, first, "can", *size, canvas)
    page.reload()
    page.wait_for_selector("#ann-box-list button[data-box='3']").click()
    assert page.evaluate(CENTRE_HIT, 3) == "box-3"
    handles = page.evaluate(HANDLES, TARGET)
    assert {h["name"] for h in handles} >= {"top-left", "top-right", "bottom-left", "bottom-right"}, handles
    assert [h for h in handles if h["missed"]] == []

"""A box's class label on the Annotation page stays readable: clear of the selected box's resize
handles and outside the box. It was drawn 18 px above the box's top-left corner, where the 12 px
handles centred on the top edge and corners covered it (a small box's label could not be read), and
a box touching the photo's top had its label inside it, over the object."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboard import test_annotation
from tests.dashboard.conftest import Browser, LiveServer
from tests.dashboard.test_annotation import open_queue
from tests.dashboard.test_annotation_handles import add_box

annotator = test_annotation.annotator  # the fixture

# The label of box ``id`` (its text and dark backing), the box, its visible handles and the photo, in
# stage pixels, as Konva draws them.
LAYOUT = """id => {
  const stage = Konva.stages[0];
  const rect = (node) => { const r = node.getClientRect(); return [r.x, r.y, r.x + r.width, r.y + r.height]; };
  const text = stage.find("Text").find((node) => node.text().startsWith(`${id} `));
  return {
    label: rect(text), text: text.text(),
    box: rect(stage.findOne(`.box-${id}`)),
    handles: stage.find("._anchor").filter((a) => a.visible())
      .map((a) => ({ name: a.name().split(" ")[0], rect: rect(a) })),
    photo: [0, 0, stage.width(), stage.height()],
  };
}"""


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize(("size", "at"), [((20, 20), (0.3, 0.3)), ((90, 50), (0.4, 0.0)), ((20, 14), (0.6, 0.0))],
                         ids=["small-box", "at-the-top", "small-at-the-top"])
def test_a_box_s_label_is_clear_of_its_handles_and_outside_the_box(
    browser: Browser, live_server: LiveServer, annotator: str, shared_dir: Path,
    size: tuple[int, int], at: tuple[float, float],
) -> None:
    (first,) = open_queue(browser, live_server, annotator, shared_dir, 40, 1)
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    canvas = page.locator("#ann-stage canvas").last.bounding_box()
    add_box(live_server, annotator, first, "can", *size, canvas, at=at)
    page.reload()
    page.wait_for_selector("#ann-box-list button[data-box='3']").click()  # selected: its handles show
    layout = page.evaluate(LAYOUT, 3)
    browser.shot(f"annotation-label-{size[0]}x{size[1]}-{at[1]}")
    label, box = layout["label"], layout["box"]
    assert len(layout["handles"]) >= 4, layout
    covered = [h["name"] for h in layout["handles"] if overlap(label, h["rect"])]
    assert covered == [], f"the label {layout['text']!r} at {label} lies under the handles {covered}"
    assert not overlap(label, box), f"the label at {label} lies on the box {box}"
    photo = layout["photo"]
    assert photo[0] <= label[0] and label[2] <= photo[2] + 0.5, (label, photo)
    assert photo[1] <= label[1] and label[3] <= photo[3] + 0.5, (label, photo)

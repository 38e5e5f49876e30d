/* Annotation: the keyboard shortcuts (listed on the page): arrows move or resize the selected box,
   [ and ] pick a box, N adds one, D draws one, A accepts, Delete deletes, C changes its class, Enter
   finishes the photo, U marks it unusable, Page Down and Up move in the queue, Ctrl+Z undoes. Kept
   apart from annotation.js (over 400 lines), which calls Trivue.annotationKeys(ann) once and listens
   with the handler it gets; ann is the page's shared context. */
"use strict";

(() => {
  const STEP = 0.01; // arrows move or resize by 1 % of the photo
  const MIN = 0.01; // smallest box side, fraction of the photo
  const KEY_SAVE_MS = 450; // arrows are saved as one decision once the annotator pauses
  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  function keysOf(ann) {
    const { state } = ann;
    const newClass = document.getElementById("ann-new-class");
    const clamp = (v) => Math.min(1, Math.max(0, v));

    function nudge(dx, dy, resize) {
      const box = ann.live().find((b) => b.id === state.selected);
      if (!box) return;
      if (resize) {
        box.x2 = clamp(Math.max(box.x1 + MIN, box.x2 + dx));
        box.y2 = clamp(Math.max(box.y1 + MIN, box.y2 + dy));
      } else {
        const w = box.x2 - box.x1, h = box.y2 - box.y1;
        box.x1 = Math.min(1 - w, Math.max(0, box.x1 + dx));
        box.y1 = Math.min(1 - h, Math.max(0, box.y1 + dy));
        box.x2 = box.x1 + w;
        box.y2 = box.y1 + h;
      }
      state.nudged.set(box.id, { at: ++state.nudges, box: { x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2 } });
      ann.draw();
      clearTimeout(state.keyTimer);
      state.pendingMove = { eventId: state.photo.event_id, body: { action: "move", box_id: box.id, x1: box.x1,
        y1: box.y1, x2: box.x2, y2: box.y2, version: state.photo.version } };
      state.keyTimer = setTimeout(ann.flush, KEY_SAVE_MS);
    }

    function cycle(step) {
      const boxes = ann.live();
      if (!boxes.length) return;
      const at = boxes.findIndex((b) => b.id === state.selected);
      ann.select(boxes[(at + step + boxes.length) % boxes.length].id);
    }

    function onKey(event) {
      const target = event.target;
      if (target.matches && target.matches("input, select, textarea")) return;
      const key = event.key, selected = state.selected, undoing = (event.ctrlKey || event.metaKey) && key.toLowerCase() === "z";
      if (!state.photo && !(undoing && state.finished)) return; // the queue's last photo finished: Ctrl+Z brings it back
      if (state.leaving && !undoing) return; // the photo shown was just finished: the next one is on its way
      if (ARROWS[key] && selected) { // also from a box's line in the list: arrows do nothing else on a button
        const [dx, dy] = ARROWS[key];
        nudge(dx * STEP, dy * STEP, event.shiftKey);
      } else if (undoing) ann.undo();
      else if (event.ctrlKey || event.metaKey || event.altKey) return;
      else if (key === "[") cycle(-1);
      else if (key === "]") cycle(1);
      else if (key === "n" || key === "N") {
        ann.send({ action: "add", class: newClass.value, x1: 0.4, y1: 0.4, x2: 0.6, y2: 0.6 })
          .then(() => ann.select(Math.max(...ann.live().map((b) => b.id))));
      } else if (key === "d" || key === "D" || (key === "Escape" && state.drawing)) ann.setDrawing(!state.drawing);
      else if ((key === "a" || key === "A") && selected) ann.send({ action: "accept", box_id: selected });
      else if ((key === "Delete" || key === "Backspace") && selected) { ann.send({ action: "delete", box_id: selected }); state.selected = null; }
      else if ((key === "c" || key === "C") && selected) ann.send({ action: "move", box_id: selected, class: newClass.value });
      else if (key === "u" || key === "U") ann.finish("unusable");
      else if (key === "Enter" && target.tagName !== "BUTTON") ann.finish("done");
      else if (key === "PageDown") ann.goTo(state.index + 1);
      else if (key === "PageUp") ann.goTo(state.index - 1);
      else return;
      event.preventDefault();
    }

    return onKey;
  }

  Trivue.annotationKeys = keysOf;
})();

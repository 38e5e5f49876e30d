/* Annotation: one field photo at a time with the model's boxes; accept, delete, move or resize, add,
   unusable, finish, undo. Box editing is Konva's (vendor/konva); every decision goes to
   /api/labels/photos/{id}/decisions, which keeps it for undo and writes the audit log.
   The page's parts, each in its own file loaded before this one (templates/dashboard/annotation.html):
   annotation-decisions.js (decisions sent and answered), annotation-stage.js (the photo, its boxes and
   their handles), annotation-queue.js (the queue, moves between photos, finish and undo) and
   annotation-keys.js (the keyboard shortcuts). This file holds the state they share and starts them. */
"use strict";

(() => {
  const { t, api, label } = Trivue;
  const status = document.getElementById("ann-status");
  const form = document.getElementById("ann-filters");
  const newClass = document.getElementById("ann-new-class");

  // saving: the last decision sent, the next one waits for its answer; nudged: each box's latest arrow
  // move (numbered by nudges) until an answer holds it; taken: the decisions kept on the photo shown
  // since it came, less those undone (annotation-decisions.js); finished: the photo Enter or U just left;
  // finishing: their finish until it is answered; leaving: true from that finish, kept, until the next photo shows
  // (annotation-queue.js)
  const state = { items: [], index: 0, photo: null, selected: null, drawing: false, keyTimer: null, pendingMove: null,
    draft: null, saving: Promise.resolve(), nudges: 0, nudged: new Map(), taken: 0, finished: null, finishing: null,
    leaving: false };

  const classLabel = (name) => label("class", name);
  const live = () => (state.photo ? state.photo.boxes.filter((b) => b.state !== "deleted") : []);

  function filters() {
    const values = Object.fromEntries(new FormData(form).entries());
    for (const key of Object.keys(values)) if (!values[key]) delete values[key];
    return values;
  }

  function say(text, error) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(error));
  }

  // The context each part gets: what one part gives (draw, send, finish...) the others call through it
  // once the page runs, never while the parts are made, so they can call one another whatever the order.
  // image: the photo shown, loaded by annotation-queue.js and drawn by annotation-stage.js.
  const ann = { state, say, filters, live, image: null };
  Object.assign(ann, Trivue.annotationDecisions(state, () => ann.draw(), say)); // send, flush
  Object.assign(ann, Trivue.annotationStage(ann)); // draw, select, setDrawing, clear
  Object.assign(ann, Trivue.annotationQueue(ann)); // goTo, finish, undo, reload
  const onKey = Trivue.annotationKeys(ann);

  async function start() {
    const query = new URLSearchParams(location.search);
    for (const element of form.elements) if (element.name && query.has(element.name)) element.value = query.get(element.name);
    try {
      const classes = await api("/api/labels/classes");
      const select = form.elements.class;
      for (const c of classes) {
        select.add(new Option(classLabel(c.name) === c.name ? c.label : classLabel(c.name), c.name));
        newClass.add(new Option(classLabel(c.name) === c.name ? c.label : classLabel(c.name), c.name));
      }
      if (query.has("class")) select.value = query.get("class");
    } catch (error) {
      if (error.status === 403) { say(t("ann.forbidden"), true); document.body.dataset.ready = "true"; return; }
      throw error;
    }
    form.addEventListener("change", () => {
      // Dates out of order: said beside them in the reader's language, nothing sent (the API's
      // 422 is English and would have shown in the French status line), the link kept.
      if (!Trivue.datesInOrder(form, filters(), "a-dates-error")) return;
      history.replaceState(null, "", Trivue.url(location.pathname, filters()));
      ann.reload();
    });
    form.addEventListener("submit", (event) => event.preventDefault());
    document.addEventListener("keydown", onKey);
    const buttons = {
      "ann-prev": () => ann.goTo(state.index - 1), "ann-next": () => ann.goTo(state.index + 1),
      "ann-draw": () => ann.setDrawing(!state.drawing),
      "ann-add": () => ann.send({ action: "add", class: newClass.value, x1: 0.4, y1: 0.4, x2: 0.6, y2: 0.6 }),
      "ann-accept": () => state.selected && ann.send({ action: "accept", box_id: state.selected }),
      "ann-delete": () => state.selected && ann.send({ action: "delete", box_id: state.selected }),
      "ann-undo": ann.undo,
      "ann-unusable": () => ann.finish("unusable"),
      "ann-done": () => ann.finish("done"),
    };
    for (const [id, action] of Object.entries(buttons)) document.getElementById(id).addEventListener("click", action);
    window.addEventListener("resize", () => ann.draw());
    // A link with its dates out of order waits for a correction, as the map does.
    if (Trivue.datesInOrder(form, filters(), "a-dates-error")) await ann.reload();
    else document.body.dataset.ready = "error";
  }

  start().catch((error) => Trivue.showError(status, error));
})();

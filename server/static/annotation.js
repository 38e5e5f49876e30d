/* Annotation: one field photo at a time with the model's boxes; accept, delete, move or resize, add,
   unusable, finish, undo. Box editing is Konva's (vendor/konva); every decision goes to
   /api/labels/photos/{id}/decisions, which keeps it for undo and writes the audit log. */
"use strict";

(() => {
  const { t, api, el, label } = Trivue;
  const status = document.getElementById("ann-status");
  const progress = document.getElementById("ann-progress");
  const form = document.getElementById("ann-filters");
  const container = document.getElementById("ann-stage");
  const list = document.getElementById("ann-box-list");
  const newClass = document.getElementById("ann-new-class");
  const drawButton = document.getElementById("ann-draw");
  const COLORS = { pending: "#ffb000", accepted: "#2ecc71", human: "#4ea8ff" };
  const STEP = 0.01; // arrows move or resize by 1 % of the photo
  const MIN = 0.01; // smallest box side, fraction of the photo
  const KEY_SAVE_MS = 450; // arrows are saved as one decision once the annotator pauses
  // A resize handle is drawn 12 px (it hides little of the photo) and caught at least 24 px wide (WCAG
  // 2.5.8): Konva's 10 px handles were missed by a finger on the depot's tablets and by a laptop's
  // touchpad. 26: a handle's centre often falls between pixels, and Konva's hit canvas loses the
  // outermost, half-covered pixel row; 24 left the target a pixel short on such sides.
  const HANDLE = 12, HANDLE_TARGET = 26;

  // saving: the last decision sent, the next one waits for its answer; nudged: each box's latest arrow
  // move (numbered by nudges) until an answer holds it; taken: the decisions kept on the photo shown
  // since it came, less those undone (annotation-decisions.js); finished: the photo Enter or U just left
  const state = { items: [], index: 0, photo: null, selected: null, drawing: false, keyTimer: null, pendingMove: null,
    draft: null, saving: Promise.resolve(), nudges: 0, nudged: new Map(), taken: 0, finished: null };
  let stage = null, layer = null, transformer = null, image = null, imageUrl = null;

  const classLabel = (name) => label("class", name);
  const clamp = (v) => Math.min(1, Math.max(0, v));
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

  // Decisions go out one at a time, and their answers come back, in annotation-decisions.js.
  const { send, flush } = Trivue.annotationDecisions(state, () => draw(), say);

  /* --- Drawing the photo and its boxes (Konva) --- */
  function size() { // the whole photo on the screen at once: on a laptop's 768 px, its bottom was off it
    const fit = Math.max(240, window.innerHeight - 8) * state.photo.width / state.photo.height;
    const width = Math.round(Math.min(container.clientWidth || 800, 1100, fit));
    return { width, height: Math.round(width * state.photo.height / state.photo.width) };
  }

  function toBox(node) {
    const { width, height } = stage.size();
    const x1 = clamp(node.x() / width), y1 = clamp(node.y() / height);
    const x2 = clamp((node.x() + node.width() * node.scaleX()) / width);
    const y2 = clamp((node.y() + node.height() * node.scaleY()) / height);
    return { x1, y1, x2, y2 };
  }

  function rectFor(box) {
    const { width, height } = stage.size();
    const color = box.origin === "human" ? COLORS.human : COLORS[box.state];
    const rect = new Konva.Rect({
      x: box.x1 * width, y: box.y1 * height, width: (box.x2 - box.x1) * width, height: (box.y2 - box.y1) * height,
      stroke: color, strokeWidth: 3, dash: box.state === "pending" ? [8, 4] : null, draggable: !state.drawing,
      name: `box-${box.id}`, strokeScaleEnabled: false,
    });
    rect.on("mousedown touchstart", () => select(box.id));
    rect.on("dragend transformend", () => {
      const moved = toBox(rect);
      send({ action: "move", box_id: box.id, ...moved });
    });
    const tag = new Konva.Text({ x: box.x1 * width + 2, y: Math.max(0, box.y1 * height - 18), text: `${box.id} ${classLabel(box.class)}`,
      fill: "#fff", fontSize: 14, padding: 2, listening: false });
    // Kept on the photo: a box near its right edge had its label cut there (most on a phone's narrow photo).
    tag.x(Math.max(0, Math.min(tag.x(), width - tag.width())));
    const back = new Konva.Rect({ x: tag.x(), y: tag.y(), width: tag.width(), height: tag.height(), fill: "rgba(0,0,0,0.6)",
      listening: false });
    return [rect, back, tag];
  }

  function draw() {
    if (!state.photo) return;
    const { width, height } = size();
    if (!stage) {
      stage = new Konva.Stage({ container, width, height });
      layer = new Konva.Layer();
      stage.add(layer);
      stage.on("mousedown touchstart", startDraft);
      stage.on("mousemove touchmove", growDraft);
      stage.on("mouseup touchend", endDraft); // and below, released outside the photo: it hung on the pointer
      for (const type of ["mouseup", "touchend"]) window.addEventListener(type, endDraft);
    }
    stage.size({ width, height });
    layer.destroyChildren();
    if (image) layer.add(new Konva.Image({ image, width, height, listening: false, name: "photo" }));
    for (const box of live()) layer.add(...rectFor(box));
    transformer = new Konva.Transformer({ rotateEnabled: false, keepRatio: false, ignoreStroke: true,
      anchorSize: HANDLE, anchorStyleFunc: (anchor) => anchor.hitStrokeWidth(HANDLE_TARGET - HANDLE),
      boundBoxFunc: (old, next) => (next.width < 4 || next.height < 4 ? old : next) });
    layer.add(transformer);
    attachTransformer();
    layer.draw();
    drawList();
    const p = state.photo;
    document.getElementById("ann-meta").textContent = t("ann.meta", { truck: p.truck_id, day: Trivue.fmt.date(p.day),
      reason: t(`ann.reason.${p.reason}`), model: p.model_version, expires: Trivue.fmt.date(p.expires_on) });
    // A manager overruled the truck on this lift: their reason says what the model got wrong.
    const overrule = document.getElementById("ann-overrule");
    overrule.hidden = !p.overrule_reason;
    overrule.textContent = p.overrule_reason ? t("ann.overruled", { reason: p.overrule_reason }) : "";
    document.getElementById("ann-position").textContent = t("ann.position", { n: state.index + 1, count: state.items.length });
    document.body.dataset.ready = "true";
  }

  function attachTransformer() { // no handles in draw mode: a drag from one resized the box instead of drawing
    const node = !state.drawing && state.selected && layer.findOne(`.box-${state.selected}`);
    transformer.nodes(node ? [node] : []);
  }

  function drawList() {
    list.replaceChildren(...state.photo.boxes.map((box) => {
      const conf = box.confidence === null || box.confidence === undefined ? "" : ` ${Trivue.fmt.pct(Math.round(box.confidence * 100) / 100)}`;
      const what = box.origin === "human" ? t("ann.origin.human") : t(`ann.state.${box.state}`);
      const button = el("button", { type: "button", "aria-pressed": String(box.id === state.selected),
        "data-box": box.id, text: `${box.id}. ${classLabel(box.class)}${conf} — ${what}` });
      button.addEventListener("click", () => select(box.id));
      return el("li", { class: box.state === "deleted" ? "deleted" : null, "data-box-id": box.id,
        "data-state": box.state, "data-class": box.class,
        "data-x1": box.x1.toFixed(4), "data-y1": box.y1.toFixed(4), "data-x2": box.x2.toFixed(4), "data-y2": box.y2.toFixed(4) }, button);
    }));
  }

  function select(id) {
    state.selected = id;
    if (transformer) attachTransformer();
    if (layer) layer.draw();
    for (const button of list.querySelectorAll("button")) button.setAttribute("aria-pressed", String(Number(button.dataset.box) === id));
  }

  /* --- Drawing a new box with the mouse --- */
  function setDrawing(on) {
    state.drawing = on;
    drawButton.setAttribute("aria-pressed", String(on));
    container.classList.toggle("drawing", on);
    for (const node of layer ? layer.find("Rect") : []) node.draggable(!on && node.name().startsWith("box-"));
    if (transformer) { attachTransformer(); layer.draw(); }
  }

  function startDraft() {
    if (!state.drawing) return;
    const at = stage.getPointerPosition();
    state.draft = new Konva.Rect({ x: at.x, y: at.y, width: 1, height: 1, stroke: COLORS.human, strokeWidth: 2, listening: false });
    layer.add(state.draft);
  }

  function growDraft() {
    if (!state.draft) return;
    const at = stage.getPointerPosition();
    state.draft.size({ width: at.x - state.draft.x(), height: at.y - state.draft.y() });
    layer.batchDraw();
  }

  function endDraft() {
    if (!state.draft) return;
    const rect = state.draft.getClientRect({ relativeTo: layer });
    state.draft.destroy();
    state.draft = null;
    setDrawing(false);
    const { width, height } = stage.size();
    if (rect.width < 4 || rect.height < 4) { layer.draw(); return; }
    send({ action: "add", class: newClass.value, x1: clamp(rect.x / width), y1: clamp(rect.y / height),
      x2: clamp((rect.x + rect.width) / width), y2: clamp((rect.y + rect.height) / height) });
  }

  /* --- Keyboard --- */
  function nudge(dx, dy, resize) {
    const box = live().find((b) => b.id === state.selected);
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
    draw();
    clearTimeout(state.keyTimer);
    state.pendingMove = { eventId: state.photo.event_id, body: { action: "move", box_id: box.id, x1: box.x1,
      y1: box.y1, x2: box.x2, y2: box.y2, version: state.photo.version } };
    state.keyTimer = setTimeout(flush, KEY_SAVE_MS);
  }

  function cycle(step) {
    const boxes = live();
    if (!boxes.length) return;
    const at = boxes.findIndex((b) => b.id === state.selected);
    select(boxes[(at + step + boxes.length) % boxes.length].id);
  }

  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  function onKey(event) {
    const target = event.target;
    if (target.matches && target.matches("input, select, textarea")) return;
    const key = event.key, selected = state.selected, undoing = (event.ctrlKey || event.metaKey) && key.toLowerCase() === "z";
    if (!state.photo && !(undoing && state.finished)) return; // the queue's last photo finished: Ctrl+Z brings it back
    if (ARROWS[key] && selected) { // also from a box's line in the list: arrows do nothing else on a button
      const [dx, dy] = ARROWS[key];
      nudge(dx * STEP, dy * STEP, event.shiftKey);
    } else if (undoing) undo();
    else if (event.ctrlKey || event.metaKey || event.altKey) return;
    else if (key === "[") cycle(-1);
    else if (key === "]") cycle(1);
    else if (key === "n" || key === "N") {
      send({ action: "add", class: newClass.value, x1: 0.4, y1: 0.4, x2: 0.6, y2: 0.6 }).then(() => select(Math.max(...live().map((b) => b.id))));
    } else if (key === "d" || key === "D" || (key === "Escape" && state.drawing)) setDrawing(!state.drawing);
    else if ((key === "a" || key === "A") && selected) send({ action: "accept", box_id: selected });
    else if ((key === "Delete" || key === "Backspace") && selected) { send({ action: "delete", box_id: selected }); state.selected = null; }
    else if ((key === "c" || key === "C") && selected) send({ action: "move", box_id: selected, class: newClass.value });
    else if (key === "u" || key === "U") finish("unusable");
    else if (key === "Enter" && target.tagName !== "BUTTON") finish("done");
    else if (key === "PageDown") goTo(state.index + 1);
    else if (key === "PageUp") goTo(state.index - 1);
    else return;
    event.preventDefault();
  }

  /* --- Queue and photos --- */
  /* Filter changes and photo moves overlap (a reason chosen, then another at once): an older, slower
     answer must not replace the newest selection's queue or photo. Each load takes a ticket (app.js);
     a stale one drops its answer (null). */
  const ticket = Trivue.newestOnly();

  async function loadQueue(current) {
    const queue = await api("/api/labels/queue", filters());
    if (!current()) return null;
    state.items = queue.items;
    progress.textContent = t("ann.progress", { done: queue.done, total: queue.total });
    return queue;
  }

  async function show(index, current = ticket()) {
    await flush(); // a move waiting to be saved belongs to the photo being left
    if (!current()) return;
    if (!state.items.length) {
      state.photo = null;
      if (layer) { layer.destroyChildren(); layer.draw(); }
      list.replaceChildren();
      say(t("ann.empty"));
      document.body.dataset.ready = "true";
      return;
    }
    // the place moves once the photo is here: a failed load stays on the photo shown, and its place
    const at = Math.min(Math.max(index, 0), state.items.length - 1);
    const photo = await api(`/api/labels/photos/${state.items[at].event_id}`);
    if (!current()) return;
    if (imageUrl !== photo.image_url) {
      const loaded = await new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img);
        img.onerror = () => reject(Object.assign(new Error(photo.image_url), { image: true }));
        img.src = photo.image_url;
      });
      if (!current()) return;
      image = loaded;
      imageUrl = photo.image_url;
    }
    state.index = at;
    state.photo = photo;
    state.nudged.clear(); // arrow moves of the photo left: saved on it (flush above)
    state.selected = null;
    state.taken = 0;
    draw();
  }

  async function next(current = ticket()) {
    const at = state.index;
    if (!await loadQueue(current)) return;
    // a finished photo leaves the "to label" queue: the next one now sits at the same place
    const stays = state.items.findIndex((i) => state.photo && i.event_id === state.photo.event_id);
    await show(stays >= 0 ? at + 1 : at, current);
  }

  /* Another photo (Enter, U, Page Down or Up, the buttons): its load can fail (no network, a 5xx, its
     image). Before, the rejection went unhandled and the page sat on the photo left, saying nothing.
     Said in French now, with a retry of that same step; the photo shown stays, and its keys work. */
  const retry = el("button", { type: "button", class: "button", id: "ann-retry", hidden: true, text: t("ann.retry") });
  status.after(retry);

  async function moving(step) {
    const current = ticket();
    try {
      await step(current);
      if (current() && !retry.hidden) { retry.hidden = true; say(""); } // the failure said is over
    } catch (error) {
      if (!current()) return; // a newer move or filter answers instead
      const why = error instanceof Trivue.ApiError ? t("ann.next_failed.status", { status: error.status })
        : t(error.image ? "ann.next_failed.image" : "ann.next_failed.network");
      say(t("ann.next_failed", { why }), true);
      retry.onclick = () => moving(step);
      retry.hidden = false;
    }
  }
  const goTo = (index) => { state.finished = null; return moving((current) => show(index, current)); };

  /* Enter ("done") or U ("unusable"): once kept, the next photo; the one left is remembered for Ctrl+Z,
     also while the next photo is on its way (a quick Ctrl+Z then drops it: moving's ticket). */
  async function finish(action) {
    const left = state.photo && state.photo.event_id;
    if (!(await send({ action }))) return; // refused: the page stays on the photo, nothing was saved
    state.finished = left;
    state.taken = 0; // the decisions counted were on the photo left: the finish took them along
    await moving(next);
  }

  /* Ctrl+Z takes back the annotator's decisions on the photo shown, latest first; with none left there
     since it came, the finish (Enter, U) of the photo just left, which shows again. Before, Ctrl+Z after
     a finish by mistake answered "Rien à annuler" on the next photo, and the finished photo (its boxes
     left to check accepted, into the export) had left the queue "À annoter". */
  async function undo() {
    await flush(); // an arrow move still waiting is a decision on the photo shown
    const left = state.finished;
    if (!left || state.taken > 0) return send({ action: "undo" });
    state.finished = null;
    if (!(await send({ action: "undo" }, left))) return; // refused (someone changed it since): said
    await moving(async (current) => {
      if (!await loadQueue(current)) return;
      const at = state.items.findIndex((i) => i.event_id === left); // back at its place in the queue
      await show(at >= 0 ? at : state.index, current);
    });
  }

  async function reload() {
    const current = ticket();
    state.finished = null; // Ctrl+Z stays on the photos of the queue the filters show
    retry.hidden = true; // a retry of a step on the queue the filters replace
    try {
      if (await loadQueue(current)) await show(0, current);
    } catch (error) {
      if (!current()) return;
      if (error.status === 403) say(t("ann.forbidden"), true);
      else Trivue.showError(status, error);
      document.body.dataset.ready = "true";
    }
  }

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
      reload();
    });
    form.addEventListener("submit", (event) => event.preventDefault());
    document.addEventListener("keydown", onKey);
    const buttons = {
      "ann-prev": () => goTo(state.index - 1), "ann-next": () => goTo(state.index + 1),
      "ann-draw": () => setDrawing(!state.drawing),
      "ann-add": () => send({ action: "add", class: newClass.value, x1: 0.4, y1: 0.4, x2: 0.6, y2: 0.6 }),
      "ann-accept": () => state.selected && send({ action: "accept", box_id: state.selected }),
      "ann-delete": () => state.selected && send({ action: "delete", box_id: state.selected }),
      "ann-undo": undo,
      "ann-unusable": () => finish("unusable"),
      "ann-done": () => finish("done"),
    };
    for (const [id, action] of Object.entries(buttons)) document.getElementById(id).addEventListener("click", action);
    window.addEventListener("resize", () => draw());
    // A link with its dates out of order waits for a correction, as the map does.
    if (Trivue.datesInOrder(form, filters(), "a-dates-error")) await reload();
    else document.body.dataset.ready = "error";
  }

  start().catch((error) => Trivue.showError(status, error));
})();

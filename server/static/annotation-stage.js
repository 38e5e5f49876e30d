/* Annotation: the photo and its boxes drawn with Konva (vendor/konva), a box moved or resized with the
   mouse (its transformer and handles) or drawn anew, and the list of boxes beside the photo. Kept apart
   from annotation.js (over 400 lines), which calls Trivue.annotationStage(ann) once and gets draw,
   select, setDrawing and clear; ann is the page's shared context (state, send, live, say). */
"use strict";

(() => {
  const { t, el, label } = Trivue;
  const COLORS = { pending: "#ffb000", accepted: "#2ecc71", human: "#4ea8ff" };
  // A resize handle is drawn 12 px (it hides little of the photo) and caught at least 24 px wide (WCAG
  // 2.5.8): Konva's 10 px handles were missed by a finger on the depot's tablets and by a laptop's
  // touchpad. 26: a handle's centre often falls between pixels, and Konva's hit canvas loses the
  // outermost, half-covered pixel row; 24 left the target a pixel short on such sides.
  const HANDLE = 12, HANDLE_TARGET = 26;
  const CORNERS = ["top-left", "top-right", "bottom-left", "bottom-right"];

  /* A box's handles, as far out from its sides (padding, px) as keeps its middle half free of their
     targets, which reach HANDLE_TARGET / 2 from their centre; an edge's middle handle only where its
     target clears the corners' ones. Before, on a box under about 30 px, the eight targets covered it
     whole: a press anywhere on it resized it, and only the keyboard could move it. */
  function handlesFor(node) {
    const width = node.width() * node.scaleX(), height = node.height() * node.scaleY();
    const padding = Math.max(0, Math.ceil(HANDLE_TARGET / 2 - Math.min(width, height) / 4));
    const enabledAnchors = [...CORNERS];
    if (width / 2 + padding >= HANDLE_TARGET) enabledAnchors.push("top-center", "bottom-center");
    if (height / 2 + padding >= HANDLE_TARGET) enabledAnchors.push("middle-left", "middle-right");
    return { padding, enabledAnchors };
  }

  /* Where a box's label goes: above its top handles, else (a box at the photo's top) below its bottom
     ones, else inside it under the top ones. It was drawn 18 px above the box, under the handles that
     hid a small box's label, and inside a box touching the photo's top, over the object. */
  function labelTop(node, labelHeight, photoHeight) {
    const clear = handlesFor(node).padding + HANDLE / 2 + 2; // from the box's side to beyond its handles
    const top = node.y(), bottom = node.y() + node.height() * node.scaleY();
    if (top - clear - labelHeight >= 0) return top - clear - labelHeight;
    if (bottom + clear + labelHeight <= photoHeight) return bottom + clear;
    return Math.max(0, Math.min(top + clear, photoHeight - labelHeight));
  }

  function stageOf(ann) {
    const { state } = ann;
    const container = document.getElementById("ann-stage");
    const list = document.getElementById("ann-box-list");
    const newClass = document.getElementById("ann-new-class");
    const drawButton = document.getElementById("ann-draw");
    let stage = null, layer = null, transformer = null;
    const classLabel = (name) => label("class", name);
    const clamp = (v) => Math.min(1, Math.max(0, v));

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
        ann.send({ action: "move", box_id: box.id, ...moved });
      });
      const tag = new Konva.Text({ x: box.x1 * width + 2, y: 0, text: `${box.id} ${classLabel(box.class)}`,
        fill: "#fff", fontSize: 14, padding: 2, listening: false });
      // Kept on the photo: a box near its right edge had its label cut there (most on a phone's narrow photo).
      tag.x(Math.max(0, Math.min(tag.x(), width - tag.width())));
      tag.y(labelTop(rect, tag.height(), height));
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
      if (ann.image) layer.add(new Konva.Image({ image: ann.image, width, height, listening: false, name: "photo" }));
      for (const box of ann.live()) layer.add(...rectFor(box));
      transformer = new Konva.Transformer({ rotateEnabled: false, keepRatio: false, ignoreStroke: true,
        anchorSize: HANDLE, anchorStyleFunc: (anchor) => anchor.hitStrokeWidth(HANDLE_TARGET - HANDLE),
        boundBoxFunc: (old, next) => (next.width < 4 || next.height < 4 ? old : next) });
      layer.add(transformer);
      attachTransformer();
      layer.draw();
      drawList();
      const p = state.photo;
      container.dataset.photo = p.event_id; // which photo the boxes drawn belong to
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
      if (node) transformer.setAttrs(handlesFor(node));
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

    /* The queue is empty: no photo, no boxes. */
    function clear() {
      if (layer) { layer.destroyChildren(); layer.draw(); }
      list.replaceChildren();
      delete container.dataset.photo;
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
      ann.send({ action: "add", class: newClass.value, x1: clamp(rect.x / width), y1: clamp(rect.y / height),
        x2: clamp((rect.x + rect.width) / width), y2: clamp((rect.y + rect.height) / height) });
    }

    return { draw, select, setDrawing, clear };
  }

  Trivue.annotationStage = stageOf;
})();

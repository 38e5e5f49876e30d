/* Annotation: the queue of photos to label and the move from one photo to another (Page Down and Up,
   the buttons, Enter and U that finish a photo, Ctrl+Z that takes a finish back, a filter changed).
   Kept apart from annotation.js (over 400 lines), which calls Trivue.annotationQueue(ann) once and
   gets goTo, finish, undo and reload; ann is the page's shared context. */
"use strict";

(() => {
  const { t, api, el } = Trivue;

  function queueOf(ann) {
    const { state, say } = ann;
    const status = document.getElementById("ann-status");
    const progress = document.getElementById("ann-progress");
    const stage = document.getElementById("ann-stage");
    let imageUrl = null;

    /* Filter changes and photo moves overlap (a reason chosen, then another at once): an older, slower
       answer must not replace the newest selection's queue or photo. Each load takes a ticket (app.js);
       a stale one drops its answer (null). */
    const ticket = Trivue.newestOnly();

    async function loadQueue(current) {
      const queue = await api("/api/labels/queue", ann.filters());
      if (!current()) return null;
      state.items = queue.items;
      progress.textContent = t("ann.progress", { done: queue.done, total: queue.total });
      return queue;
    }

    async function show(index, current = ticket()) {
      await ann.flush(); // a move waiting to be saved belongs to the photo being left
      if (!current()) return;
      if (!state.items.length) {
        state.photo = null;
        leave(false); // nothing left to show: the stage is empty, not waiting
        ann.clear();
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
        ann.image = loaded;
        imageUrl = photo.image_url;
      }
      state.index = at;
      state.photo = photo;
      leave(false); // a photo shows: its keys act on it
      state.nudged.clear(); // arrow moves of the photo left: saved on it (flush above)
      state.selected = null;
      state.taken = 0;
      ann.draw();
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
        leave(false); // the photo shown stays: its keys act on it
        const why = error instanceof Trivue.ApiError ? t("ann.next_failed.status", { status: error.status })
          : t(error.image ? "ann.next_failed.image" : "ann.next_failed.network");
        say(t("ann.next_failed", { why }), true);
        retry.onclick = () => moving(step);
        retry.hidden = false;
      }
    }
    const goTo = (index) => { state.finished = null; return moving((current) => show(index, current)); };

    /* Enter ("done") or U ("unusable"): once kept, the next photo; the one left is remembered for Ctrl+Z,
       also while the next photo is on its way (a quick Ctrl+Z then drops it: moving's ticket). Until the
       finish is answered, it is state.finishing, which a Ctrl+Z then takes back: the page stays. */
    async function finish(action) {
      const left = state.photo && state.photo.event_id;
      const finishing = { sent: ann.send({ action }), undone: false };
      state.finishing = finishing;
      const kept = await finishing.sent;
      if (state.finishing === finishing) state.finishing = null;
      if (!kept) return; // refused: the page stays on the photo, nothing was saved
      if (finishing.undone) return; // Ctrl+Z came before the answer: it takes the finish back (undo)
      state.finished = left;
      state.taken = 0; // the decisions counted were on the photo left: the finish took them along
      // Until the next photo shows, the one left stays drawn: ] and A pressed at once after U accepted a
      // box of the photo just finished, not of the next. Only Ctrl+Z acts meanwhile (annotation-keys.js).
      // Cleared only by the newest move's end (show, or its failure said in moving): a move clicked
      // meanwhile overtakes this one, whose end then left the finished photo's keys acting again.
      leave(true);
      await moving(next);
    }

    /* The photo shown, just finished, is dimmed and marked busy (aria-busy) while the next one loads:
       the annotator sees why ] or A do nothing, and a screen reader waits for the next photo. */
    function leave(on) {
      state.leaving = on;
      stage.setAttribute("aria-busy", String(on));
    }

    /* Ctrl+Z takes back the annotator's decisions on the photo shown, latest first; with none left there
       since it came, the finish (Enter, U) of the photo just left, which shows again. Before, Ctrl+Z after
       a finish by mistake answered "Rien à annuler" on the next photo, and the finished photo (its boxes
       left to check accepted, into the export) had left the queue "À annoter".
       Ctrl+Z before a finish was answered (within a tenth of a second of Enter) waits for it, then takes it
       back on the photo still shown. Before, it read the page's state as it stood while the finish was on
       its way: after an arrow it took back the arrow's move (Enter saves it first), the finish was kept,
       and the page went on to the next photo; without, it took the finish back, and the page went on. */
    async function undo() {
      const finishing = state.finishing;
      state.finishing = null;
      if (finishing) {
        finishing.undone = true; // the page stays on the photo
        if (!(await finishing.sent)) return; // refused: nothing of it to take back, its refusal is said
      }
      await ann.flush(); // an arrow move still waiting is a decision on the photo shown
      const left = state.finished;
      if (!left || state.taken > 0) return ann.send({ action: "undo" });
      state.finished = null;
      if (!(await ann.send({ action: "undo" }, left))) return; // refused (someone changed it since): said
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
        leave(false);
        if (error.status === 403) say(t("ann.forbidden"), true);
        else Trivue.showError(status, error);
        document.body.dataset.ready = "true";
      }
    }

    return { goTo, finish, undo, reload };
  }

  Trivue.annotationQueue = queueOf;
})();

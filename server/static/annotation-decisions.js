/* Annotation: each decision on a photo sent to /api/labels/photos/{id}/decisions, one at a time, and
   its answer (or refusal, in the reader's language) shown. Kept apart from annotation.js (over 400
   lines), which calls Trivue.annotationDecisions(state, draw, say) once and gets send and flush. */
"use strict";

(() => {
  const { t, api, label } = Trivue;
  const classLabel = (name) => label("class", name);

  function decisions(state, draw, say) {
    /* A decision's answer; a refusal keeps its code and values (Trivue.api's ApiError), and a failure
       with no answer at all is a refusal too, coded "network". */
    async function post(eventId, body) {
      try {
        return await api(`/api/labels/photos/${eventId}/decisions`, null, { method: "POST", body: JSON.stringify(body),
          headers: { "Content-Type": "application/json", Accept: "application/json" } });
      } catch (error) {
        throw error instanceof Trivue.ApiError ? error : new Trivue.ApiError(0, "network", "network");
      }
    }

    /* A refusal in the reader's language (ann.refusal.<code>); a 422 of the request's shape has no code. */
    function refusal(error) {
      const params = { ...(error.params || {}) };
      if (params.who) params.who = String(params.who).replace(/^[a-z]+:/, ""); // "user:bob": bob
      if (params.action) params.action = label("ann.action", params.action);
      if (params.at) params.at = Trivue.fmt.dateTime(params.at);
      if (params.on) params.on = Trivue.fmt.date(params.on);
      if (params.class) params.class = classLabel(params.class);
      const key = `ann.refusal.${error.code}`;
      if (error.code && t(key) !== key) return t(key, params); // t gives back a key it lacks
      if (error.status === 422) return t("ann.refusal.invalid");
      return t("ann.refusal.other", { status: error.status });
    }

    /* A decision goes to the photo it was taken on (``eventId``), after any arrow move still waiting to
       be saved: sent later, the move went to whichever photo showed by then (Enter right after the
       arrows moved the next photo's box of the same number) and after the decision that follows it. */
    /* Each decision names the photo's version it was taken on (an undo needs none: the server refuses one
       that would take back someone else's decision). Another annotator on the same photo (both start at
       the head of the queue) changed it since: the server refuses (409), the page shows the photo as it
       now stands and says so, and stays on it. Before, each add went on top of the other's: every
       missed bag twice in the export. Resolves true when the decision was kept, or when the photo
       expired (410: nothing more can be done on it, Enter and U move on, saying so); false on any other
       failure (a refusal, no network), and then Enter and U stay on the photo: before, they moved on
       for anything but a 409, and the annotator believed the photo saved. A waiting arrow move that
       fails stops the decision after it: Enter would have finished a photo shown again as it stands. */
    /* Decisions go out one at a time, each once the one before is answered: two arrow saves in flight
       at once (a slow answer, arrows pressed meanwhile) could reach the server in the wrong order,
       and the older answer be drawn last; the box ended where the first save had put it. */
    async function send(body, eventId = null) {
      if (!state.photo && !eventId) return true; // eventId: the finished photo an undo brings back (annotation-queue.js)
      // The photo shown was just finished and the next is on its way (Enter, U): a button or a drag on
      // it now would change a finished photo. Nothing is sent; only Ctrl+Z, which names its photo, is.
      if (state.leaving && !eventId) return false;
      const target = eventId || state.photo.event_id;
      const seen = state.nudges; // this decision carries every arrow move made up to now (flush below)
      if (!eventId && !(await flush())) return false;
      const before = state.saving;
      let answered;
      state.saving = new Promise((resolve) => { answered = resolve; });
      try {
        await before;
        return await decide(body, target, seen);
      } finally {
        answered();
      }
    }

    async function decide(body, target, seen) {
      const version = body.action === "undo" ? undefined : state.photo && state.photo.version;
      let kept = true;
      try {
        const photo = await post(target, { version, ...body });
        if (state.photo && state.photo.event_id === target) {
          state.photo = withNudges(photo, seen);
          state.taken = Math.max(0, state.taken + (body.action === "undo" ? -1 : 1)); // for Ctrl+Z (annotation-queue.js)
        }
        say(t("ann.saved"));
      } catch (error) {
        kept = error.status === 410;
        if (error.status === 409) {
          const photo = await api(`/api/labels/photos/${target}`).catch(() => null);
          if (photo && state.photo && state.photo.event_id === target) state.photo = photo;
          const who = (error.params && error.params.who) || (photo && photo.annotator) || "";
          say(t("ann.changed", { who: who.replace(/^[a-z]+:/, "") || t("ann.someone") }), true);
        } else {
          // Enter and U move on past an expired photo: the line says which photo it was about.
          const leaving = error.status === 410 && (body.action === "done" || body.action === "unusable");
          say(leaving ? t("ann.refusal.moved_on", { refusal: refusal(error) }) : refusal(error), true);
        }
      }
      if (state.photo && state.photo.event_id === target) draw(); // what the server holds
      return kept;
    }

    /* The server's photo with the arrow moves made after ``seen`` put back on it (those before are in
       it): the answer to a save drew the box back where that save had left it while arrows had moved
       it on since, and the next arrow started from there. In a loaded test run, two of five arrow
       presses were lost (the box saved 3 % right, not 5 %). */
    function withNudges(photo, seen) {
      for (const [id, moved] of state.nudged) {
        if (moved.at <= seen) { state.nudged.delete(id); continue; }
        const box = photo.boxes.find((b) => b.id === id && b.state !== "deleted");
        if (box) Object.assign(box, moved.box);
      }
      return photo;
    }

    /* Saves the arrow move waiting for the annotator's pause now, on its own photo; with none, waits
       for the decisions already sent. A photo left (Page Down, the buttons) is left only then: a
       decision still queued read the next photo's version when its turn came, and the server
       refused it (409) while the annotator was on another photo. */
    function flush() {
      clearTimeout(state.keyTimer);
      const waiting = state.pendingMove;
      state.pendingMove = null;
      return waiting ? send(waiting.body, waiting.eventId) : state.saving.then(() => true);
    }

    return { send, flush };
  }

  Trivue.annotationDecisions = decisions;
})();

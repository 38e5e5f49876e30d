/* Flotte: trucks from their heartbeats; one silent for too long is flagged whatever its MQTT status,
   unless its agent said it stopped (end of shift): that silence is explained.
   Each truck's model, the model the server asked for and the last model change (refused: why), and
   the latest rollout with the canaries' progress. */
"use strict";

(() => {
  const { config, t, api, fmt, el, label } = Trivue;
  const summary = document.getElementById("fleet-summary");
  const silentAfterS = config.silentAfterS || 900;

  // The server's state: the truck's last status message (online; offline, the last will: connection
  // lost; stopped: a clean exit), or online when the truck was heard from after it; unknown before any.
  const stateOf = (truck) => ["online", "offline", "stopped"].includes(truck.state) ? truck.state : "unknown";
  // Silent: not heard from for silentAfterS (or never), unless stopped. The server says it, by its clock
  // (a reader's PC a few minutes off flagged trucks the /metrics gauge trivue_trucks_silent did not count).
  const isSilent = (truck) => truck.silent === true;

  // Why the truck reads as it does, in the badge's tooltip. Online against a status message that said
  // otherwise (a second agent, a status left retained): that message and when it came.
  function stateHint(truck, state) {
    const when = truck.status_at ? fmt.dateTime(truck.status_at) : "–";
    if (state !== "online") return t(`fleet.${state}_hint`, { when });
    if (truck.status === "online") return t("fleet.online_hint", { when });
    return truck.status_at ? t("fleet.heard_since_status", { said: t(`fleet.${stateOf({ state: truck.status })}`), when })
      : t("fleet.heard_without_status");
  }

  // Two agents or more send heartbeats under this id (a copied configuration): their lifts mix.
  function agentsBadge(truck) {
    const twins = truck.duplicate_agents;
    const n = twins.started_at.length;
    return el("span", { class: "badge danger", "data-agents": "duplicate",
      text: `⚠ ${t(n > 2 ? "fleet.agents_many" : "fleet.agents_two", { n, truck: truck.truck_id })}`,
      title: t("fleet.agents_hint", { started: twins.started_at.map(fmt.dateTime).join(", "),
        when: fmt.dateTime(twins.seen_at) }) });
  }

  function statusCell(truck, s) {
    const state = stateOf(truck);
    const cell = el("td", {}, el("span", { class: `badge ${state === "online" ? "ok" : "off"}`, "data-state": state,
      "data-status": truck.status, title: stateHint(truck, state), text: t(`fleet.${state}`) }));
    if (truck.duplicate_agents) cell.append(" ", agentsBadge(truck));
    if (isSilent(truck)) {
      cell.append(" ", el("span", { class: "badge warn", title: t("fleet.silent_hint", { minutes: Math.round(silentAfterS / 60) }),
        text: `⚠ ${t("fleet.silent")}` }));
    }
    // Wire 1.3 heartbeats: positive, the camera box is behind; absent (older trucks, or no burst
    // seen being written yet): nothing to say.
    const offset = s.camera_clock_offset_s;
    if (typeof offset === "number" && Math.abs(offset) >= cameraClockWarnS) {
      const way = offset > 0 ? "behind" : "ahead";
      cell.append(" ", el("span", { class: "badge warn", "data-camera-clock": way,
        text: `⚠ ${t("fleet.camera_clock", { span: span(offset) })}`,
        title: t(`fleet.camera_clock_${way}_hint`, { span: span(offset) }) }));
    }
    const view = s.camera_view;  // wire 1.4: the last lifts' camera view was unusable (not judged)
    if (view && view.problem) {
      cell.append(" ", el("span", { class: "badge danger", "data-camera-view": view.problem,
        text: `⚠ ${t("fleet.view_unusable", { problem: t(`fleet.view_${view.problem}`), n: view.lifts })}`,
        title: t(`fleet.view_${view.problem}_hint`, { since: view.since ? fmt.dateTime(view.since) : "–" }) }));
      // What the camera saw (a bag on the lens?): the truck's photo of the view, for managers (the photo's rights).
      if (truck.view_photo && manager) {
        cell.append(" ", el("a", { href: `/api/lifts/${encodeURIComponent(truck.view_photo)}/evidence.jpg`,
          target: "_blank", rel: "noopener", "data-view-photo": truck.view_photo, text: t("fleet.view_photo"),
          // Every flagged truck has one: its name says whose lift and when (RGAA 6.1), the words shown first.
          "aria-label": t("fleet.view_photo_label", { truck: truck.truck_id, when: fmt.dateTime(truck.view_photo_at) }) }));
      }
    }
    return cell;
  }

  // The reader's number format (6,5 and 1 250 ms on a French page), not toFixed's "6.5" and "1250".
  const formats = {};
  const decimal = (value, digits) => (formats[digits] ||= new Intl.NumberFormat(Trivue.locale,
    { minimumFractionDigits: digits, maximumFractionDigits: digits })).format(value);
  const num = (value, unit, digits = 0) =>
    value === null || value === undefined ? "–" : `${decimal(Number(value), digits)}${unit}`;

  // The camera box's clock off the truck's by this much or more: the agent logs it (edge REPORT_S),
  // the page shows it. Lift times are corrected by it; the badge asks for the box's clock to be set.
  const cameraClockWarnS = 30;

  // The size of an offset for a person: 45 s, 3 min, 5 h, 12 jours, 56 ans (a box booted in 1970).
  function span(seconds) {
    const size = Math.abs(seconds);
    const [unit, n] = size >= 2 * 365.25 * 86400 ? ["years", size / (365.25 * 86400)]
      : size >= 2 * 86400 ? ["days", size / 86400] : size >= 2 * 3600 ? ["h", size / 3600]
        : size >= 120 ? ["min", size / 60] : ["s", size];
    return t(`fleet.span_${unit}`, { n: decimal(Math.round(n), 0) });
  }

  // A truck's refusal in the reader's language: its kind named first (rollout.refusal.<kind>), then the
  // truck's own words (file names, classes), which stay; a kind this page does not know: the words alone.
  function refusalText(kind, words) {
    const named = kind && label("rollout.refusal", kind);  // the code back: a kind unknown here
    return named && named !== kind ? `${named} (${words})` : words;
  }

  // Versions by sha256: the models published, and what each truck was asked to run.
  let versions = {};
  const versionOf = (sha) => versions[sha] || (sha ? sha.slice(0, 12) : "–");

  // The INT8 self-check failed at start-up: the truck runs its FP32 model (slower), say it. A model
  // change in progress or refused is shown beside the model running; refused says why.
  function modelCell(truck, s, model) {
    const cell = el("td", { text: model, title: s.model ? `${s.model.name} ${s.model.version}` +
      (s.model_sha256 ? ` (sha256 ${s.model_sha256.slice(0, 12)})` : "") : null });
    const check = s.model_check;
    if (check && check.status === "fallback") {
      cell.append(" ", el("span", { class: "badge warn", text: `⚠ ${t("fleet.fallback")}`,
        title: t("fleet.fallback_hint", { disagreement: decimal(Number(check.disagreement), 2),
          threshold: decimal(Number(check.threshold), 2), running: check.running }) }));
    }
    const update = s.model_update;
    const asked = truck.config && truck.config.model;
    if (update && update.state === "refused") {
      cell.append(" ", el("span", { class: "badge danger", "data-update": "refused",
        text: `⚠ ${versionOf(update.sha256)} ${t("fleet.update_refused")}`, title: update.reason || "" }),
        el("div", { class: "update-reason", "data-refusal": truck.model_refusal || "other",
          text: refusalText(truck.model_refusal, update.reason || t("rollout.refusal.unsaid")) }));
    } else if (update && update.state !== "installed" && update.sha256 !== s.model_sha256) {
      cell.append(" ", el("span", { class: "badge off", "data-update": update.state,
        text: `↻ ${versionOf(update.sha256)}`, title: t("fleet.update_hint", { version: versionOf(update.sha256),
          state: t(`fleet.update_${update.state}`) }) }));
    } else if (asked && asked.sha256 !== s.model_sha256 && !(update && update.sha256 === asked.sha256)) {
      cell.append(" ", el("span", { class: "badge off", text: t("fleet.asked", { version: asked.version }) }));
    }
    return cell;
  }

  const rolloutBox = document.getElementById("rollout-state");
  const canaryList = document.getElementById("rollout-canaries");

  // The reason in the reader's language from its code and parameters (rollout.reason.<code>); a code
  // this page does not know (a reason stored before codes: "other") shows the server's English text.
  function reasonText(rollout) {
    const key = `rollout.reason.${rollout.reason_code}`;
    const params = rollout.reason_params || {};
    if (!rollout.reason_code || t(key) === key) return rollout.reason;  // t gives back a key it lacks
    if (rollout.reason_code === "canary_refused") {
      return t(key, { truck: params.truck,
        detail: refusalText(params.refusal, params.detail || t("rollout.refusal.unsaid")) });
    }
    const unknown = params.unknown || [];
    return t(key, params) + (unknown.length ? t("rollout.reason.unknown_previous", { trucks: unknown.join(", ") })
      : "");
  }

  // A canary the rollout waits on, in the words of its row: silent past the server's
  // rollout_stall_after_s (the rollout is stalled), or not alive now (offline_canaries: picked when too
  // few trucks were online). Not alive is the row's state: stopped, offline, or « En ligne » yet
  // « Silencieux » (its state is online, it has not been heard from for 15 min): "hors ligne" there
  // contradicted the badge. Never heard (« Inconnu »): never seen. Online and heard since the rollout
  // was read (the two requests apart): nothing to say, as its row. [words, silent]
  function canaryWords(rollout, truck, byId) {
    const row = byId[truck];
    const seen = row && row.last_seen_at;
    const silent = [` — ⚠ ${seen ? t("fleet.canary_silent", { ago: fmt.ago(seen) }) : t("fleet.canary_never_seen")}`,
      true];
    if ((rollout.stalled_canaries || []).includes(truck)) return silent;
    if (!(rollout.offline_canaries || []).includes(truck)) return ["", false];
    const state = row ? stateOf(row) : "unknown";
    if (state === "stopped" || state === "offline") return [` — ${t(`fleet.canary_${state}`)}`, false];
    return state === "online" && !isSilent(row) ? ["", false] : silent;
  }

  function showRollout(rollout, byId = {}) {
    if (!rollout) {
      rolloutBox.textContent = t("rollout.none");
      canaryList.replaceChildren();
      return;
    }
    rolloutBox.replaceChildren(
      el("span", { class: `badge ${{ complete: "ok", halted: "danger", canary: "warn" }[rollout.state] || "off"}`,
        "data-state": rollout.state, text: t(`rollout.state.${rollout.state}`) }), " ",
      t("rollout.summary", { name: rollout.name, version: rollout.version, when: fmt.ago(rollout.created_at),
        by: rollout.created_by }));
    if (rollout.stalled) {
      rolloutBox.append(" ", el("span", { class: "badge danger", "data-stalled": "true",
        text: `⚠ ${t("fleet.rollout_stalled")}`,
        title: t("fleet.rollout_stalled_hint", { hours: decimal(rollout.stall_after_s / 3600, 0) }) }));
    }
    const items = rollout.canary.map((truck) => {
      const [words, silent] = canaryWords(rollout, truck, byId);
      return el("li", { "data-canary": truck, "data-silent": silent ? "true" : null,
        text: t("rollout.canary_progress", { truck, lifts: Math.min(rollout.lifts[truck] || 0, rollout.canary_lifts),
          needed: rollout.canary_lifts }) + words });
    });
    // The rest wait at the canary stage and have followed once it is complete (a truck that joined the
    // fleet meanwhile among them); a halted or superseded rollout never reached them: no line.
    const rest = { canary: "rollout.rest", complete: "rollout.rest_followed" }[rollout.state];
    if (rest && rollout.rest.length) {
      items.push(el("li", { "data-rest": rollout.state, text: t(rest, { trucks: rollout.rest.join(", ") }) }));
    }
    if (rollout.reason) {
      items.push(el("li", { class: "reason", "data-reason": rollout.reason_code || "other", title: rollout.reason,
        text: t("rollout.reason", { reason: reasonText(rollout) }) }));
    }
    canaryList.replaceChildren(...items);
  }

  // A configuration the truck did not apply (a stream its rules lack, one it cannot read): it keeps
  // the stream shown, and says which configuration and why (the truck's own words, in the tooltip).
  // When the server's stored config is that one, every change sends the refused value again: said.
  // A stored config newer than the one the truck reports (versions are UTC times, compared as text)
  // has not reached it yet (offline): the stream shown is not the one it was asked for.
  function streamCell(truck, s) {
    const cell = el("td", { text: s.stream ? label("stream", s.stream) : "–" });
    const stored = truck.config || {};
    const refusedVersion = s.config_refused ? s.config_refused.split(": ")[0] : null;
    if (s.config_refused) {
      cell.append(" ", el("span", { class: "badge danger", "data-config": "refused",
        text: `⚠ ${t("fleet.config_refused")}`, title: t("fleet.config_refused_hint", { reason: s.config_refused }) }));
      if (stored.config_version && stored.config_version === refusedVersion) {
        cell.append(el("div", { class: "update-reason", "data-config": "stored-refused",
          text: t("fleet.config_stored_refused") }));
      }
    }
    const version = stored.config_version;
    if (version && version !== refusedVersion && (!s.config_version || version > s.config_version)) {
      const stream = stored.stream && stored.stream !== s.stream
        ? t("fleet.config_pending_stream", { stream: label("stream", stored.stream) }) : "";
      cell.append(" ", el("span", { class: "badge off", "data-config": "pending",
        text: `↻ ${t("fleet.config_pending")}`, title: t("fleet.config_pending_hint",
          { version, stream, reported: s.config_version || t("fleet.config_never") }) }));
    }
    return cell;
  }

  // Weeks without signal fill a truck's disk: it then drops its oldest photos to keep every lift (the
  // heartbeat says so from wire 1.2). Photos lost since the truck's outbox began, by why, under the queue.
  function outboxCell(s) {
    const cell = el("td", { class: "num", text: fmt.num(s.outbox_depth) });
    if (s.disk_short) {
      cell.append(" ", el("span", { class: "badge danger", "data-disk": "short", text: `⚠ ${t("fleet.disk_short")}`,
        title: t("fleet.disk_short_hint", { free: num(s.disk_free_mb, "") }) }));
    }
    const lost = { full: s.outbox_photos_dropped || 0, expired: s.outbox_photos_expired || 0,
      too_large: s.photos_too_large || 0, refused: s.photos_refused || 0 };
    const reasons = Object.entries(lost).filter(([, count]) => count > 0);
    for (const [why, count] of reasons) {
      cell.append(el("div", { class: "update-reason", "data-photos-lost": why,
        text: t(`fleet.photos_lost_${why}`, { count: fmt.num(count) }) }));
    }
    return cell;
  }

  // Admins change trucks' configurations (PUT /api/trucks/{id}/config, audited truck.config) and
  // rollouts their models (truck.model): who changed what and when is the audit log's, every entry
  // naming the truck (/journal, admins only).
  let admin = false;
  let manager = false;  // sees the photos
  function truckCell(truck) {
    const cell = el("th", { scope: "row", text: truck.truck_id });
    if (admin) {
      cell.append(el("div", { class: "small history" }, el("a", {
        href: Trivue.url("/journal", { target: truck.truck_id }), "data-history": "config",
        "aria-label": t("fleet.config_history_label", { truck: truck.truck_id }), text: t("fleet.config_history") })));
    }
    return cell;
  }

  function row(truck) {
    const s = truck.stats || {};
    // The version tells trucks apart; the model's name (usually the same for all) is in the tooltip.
    const model = s.model ? s.model.version : "–";
    return el("tr", { class: isSilent(truck) ? "silent" : null, "data-truck": truck.truck_id },
      truckCell(truck),
      statusCell(truck, s),
      el("td", { title: fmt.dateTime(truck.last_seen_at), text: fmt.ago(truck.last_seen_at) }),
      outboxCell(s),
      el("td", { class: "num", text: num(s.inference_ms, " ms") }),
      el("td", { class: "num", text: num(s.fps, "", 1) }),
      modelCell(truck, s, model),
      el("td", { class: "num", text: num(s.gps_fix_age_s, " s") }),
      streamCell(truck, s),
      el("td", { class: "num", text: fmt.num(truck.lifts_7d) }));
  }

  async function load() {
    try {
      const [data, models, rollouts, me] = await Promise.all([api("/api/trucks"), api("/api/models"),
        api("/api/rollouts"), Trivue.me]);
      admin = Boolean(me && me.role === "admin");
      manager = Boolean(me && ["manager", "admin"].includes(me.role));
      versions = Object.fromEntries(models.models.map((m) => [m.sha256, m.version]));
      const trucks = data.trucks;
      showRollout(rollouts.rollouts[0], Object.fromEntries(trucks.map((x) => [x.truck_id, x])));
      trucks.sort((a, b) => Number(isSilent(b)) - Number(isSilent(a)) || a.truck_id.localeCompare(b.truck_id));
      const body = document.querySelector("#fleet tbody");
      body.replaceChildren(...(trucks.length ? trucks.map(row)
        : [el("tr", {}, el("td", { colspan: "10", text: t("common.none") }))]));
      const online = trucks.filter((x) => stateOf(x) === "online").length;
      summary.classList.remove("error");
      summary.textContent = t("fleet.summary", { online, total: trucks.length,
        silent: trucks.filter(isSilent).length });
      document.body.dataset.ready = "true";
    } catch (error) {
      Trivue.showError(summary, error);
    }
  }
  load();
  setInterval(load, 30000);
})();

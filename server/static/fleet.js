/* Flotte: trucks from their heartbeats; one silent for too long is flagged whatever its MQTT status. */
"use strict";

(() => {
  const { config, t, api, fmt, el, label } = Trivue;
  const summary = document.getElementById("fleet-summary");
  const silentAfterS = config.silentAfterS || 900;

  const isSilent = (truck) => !truck.last_seen_at ||
    Date.now() - new Date(truck.last_seen_at).getTime() > silentAfterS * 1000;

  function statusCell(truck) {
    const known = ["online", "offline"].includes(truck.status) ? truck.status : "unknown";
    const cell = el("td", {}, el("span", { class: `badge ${known === "online" ? "ok" : "off"}`,
      text: t(`fleet.${known}`) }));
    if (isSilent(truck)) {
      cell.append(" ", el("span", { class: "badge warn", title: t("fleet.silent_hint", { minutes: Math.round(silentAfterS / 60) }),
        text: `⚠ ${t("fleet.silent")}` }));
    }
    return cell;
  }

  const num = (value, unit, digits = 0) =>
    value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)}${unit}`;

  // The INT8 self-check failed at start-up: the truck runs its FP32 model (slower), say it.
  function modelCell(s, model) {
    const cell = el("td", { text: model, title: s.model ? `${s.model.name} ${s.model.version}` : null });
    const check = s.model_check;
    if (check && check.status === "fallback") {
      cell.append(" ", el("span", { class: "badge warn", text: `⚠ ${t("fleet.fallback")}`,
        title: t("fleet.fallback_hint", { disagreement: Number(check.disagreement).toFixed(2),
          threshold: Number(check.threshold).toFixed(2), running: check.running }) }));
    }
    return cell;
  }

  function row(truck) {
    const s = truck.stats || {};
    // The version tells trucks apart; the model's name (usually the same for all) is in the tooltip.
    const model = s.model ? s.model.version : "–";
    return el("tr", { class: isSilent(truck) ? "silent" : null, "data-truck": truck.truck_id },
      el("th", { scope: "row", text: truck.truck_id }),
      statusCell(truck),
      el("td", { title: fmt.dateTime(truck.last_seen_at), text: fmt.ago(truck.last_seen_at) }),
      el("td", { class: "num", text: fmt.num(s.outbox_depth) }),
      el("td", { class: "num", text: num(s.inference_ms, " ms") }),
      el("td", { class: "num", text: num(s.fps, "", 1) }),
      modelCell(s, model),
      el("td", { class: "num", text: num(s.gps_fix_age_s, " s") }),
      el("td", { text: s.stream ? label("stream", s.stream) : "–" }),
      el("td", { class: "num", text: fmt.num(truck.lifts) }));
  }

  async function load() {
    try {
      const data = await api("/api/trucks");
      const trucks = data.trucks;
      trucks.sort((a, b) => Number(isSilent(b)) - Number(isSilent(a)) || a.truck_id.localeCompare(b.truck_id));
      const body = document.querySelector("#fleet tbody");
      body.replaceChildren(...(trucks.length ? trucks.map(row)
        : [el("tr", {}, el("td", { colspan: "10", text: t("common.none") }))]));
      const online = trucks.filter((x) => x.status === "online").length;
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

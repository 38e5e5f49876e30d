/* Rue: rate with its confidence interval, daily trend, error breakdown and recent evidence photos. */
"use strict";

(() => {
  const { config, t, api, fmt, el, label } = Trivue;
  const status = document.getElementById("street-status");
  const query = new URLSearchParams(location.search);
  // The map's filters travel in the query: the street is shown for the same period and stream.
  // A period the map does not offer (a truncated or hand-edited link) falls back to the default one.
  const asked = query.get("period");
  const offered = asked === "custom" || Object.hasOwn(config.t, `filters.p${asked}`);
  const period = offered ? asked : Trivue.config.defaultPeriod;
  // A stream or an error type the dashboard does not know (a hand-edited link) is dropped, as the
  // map's filters drop it: the API would answer the page with its raw English 422.
  const known = (prefix, code) => (code && Object.hasOwn(config.t, `${prefix}.${code}`) ? code : null);
  const filters = { since: query.get("since"), until: query.get("until"), stream: known("stream", query.get("stream")) };
  // Opened from the map or the ranking with an error type chosen: they listed the street by the
  // share of its lifts with that error, which the page shows beside the contamination rate.
  const category = known("cat", query.get("category"));
  // The map's *Levées minimum pour juger*: a day or week with fewer lifts draws no rate (one bin is
  // 0 or 100 %, a spike as loud as a week of hundreds); its figures stay in the table.
  const minLifts = Trivue.minLifts(query.get("min_lifts"));
  if (period !== "custom") {
    filters.since = Trivue.addDays(Trivue.today(), -(Number(period) - 1));
    filters.until = null;
  }
  const periodText = period === "custom" ? `${fmt.date(filters.since)} – ${fmt.date(filters.until)}`
    : t(`filters.p${period}`);
  document.getElementById("back-link").href = `/carte${location.search}`;

  function kpis(street) {
    document.getElementById("street-name").textContent = street.name;
    const stream = filters.stream ? ` · ${label("stream", filters.stream)}` : "";
    const error = category ? ` · ${label("cat", category)}` : "";
    document.getElementById("street-commune").textContent = `${street.commune || ""} · ${periodText}${stream}${error}`;
    document.title = `${street.name} · ${config.t["app.name"]}`;
    document.getElementById("kpi-rate").textContent = fmt.pct(street.rate);
    // No lift in the period: no rate, and "0 % – 100 %" would read as a measurement.
    document.getElementById("kpi-ci").textContent = street.lifts
      ? t("street.ci", { low: fmt.pct(street.ci_low), high: fmt.pct(street.ci_high) }) : "";
    document.getElementById("kpi-category").textContent = category && street.lifts
      ? t("street.category_share", { category: label("cat", category), rate: fmt.pct(withError(street) / street.lifts),
        lifts: fmt.num(withError(street)), total: fmt.num(street.lifts) }) : "";
    document.getElementById("kpi-lifts").textContent = fmt.num(street.lifts);
    document.getElementById("kpi-contaminated").textContent = fmt.num(street.contaminated);
    const streams = Object.entries(street.streams || {});
    if (streams.length > 1) {  // one rate per stream: a yellow bin and a glass bank are judged apart
      document.getElementById("kpi-streams").replaceChildren(...streams.map(([name, s]) =>
        el("li", { text: t("street.stream_rate", { stream: label("stream", name), rate: fmt.pct(s.rate),
          lifts: fmt.num(s.lifts) }) })));
    }
  }

  /* Lifts with an error (not "info") of the chosen type, every stream summed: what /api/error-rates
     counts for the map and the ranking (a lift is of one stream only). */
  const withError = (street) => (street.errors || [])
    .filter((e) => e.category === category && e.severity !== "info").reduce((sum, e) => sum + e.lifts, 0);

  /* Days with one or two lifts swing between 0 and 100 %: beyond six weeks, sum by week (Monday). */
  function buckets(daily) {
    if (daily.length < 2 || (new Date(daily.at(-1).day) - new Date(daily[0].day)) / 86400000 <= 42) {
      return { weekly: false, rows: daily.map((d) => ({ label: fmt.date(d.day), ...d })) };
    }
    const weeks = new Map();
    for (const d of daily) {
      const day = new Date(`${d.day}T00:00:00Z`);
      day.setUTCDate(day.getUTCDate() - ((day.getUTCDay() + 6) % 7));
      const key = day.toISOString().slice(0, 10);
      const week = weeks.get(key) || { day: key, lifts: 0, contaminated: 0 };
      week.lifts += d.lifts;
      week.contaminated += d.contaminated;
      weeks.set(key, week);
    }
    const rows = [...weeks.values()].map((w) => ({ label: t("street.week_of", { date: fmt.date(w.day) }), ...w }));
    return { weekly: true, rows };
  }

  /* The same rows as the chart, as a table: what a screen reader or a keyboard user reads. */
  function trendTable(weekly, rows) {
    document.getElementById("trend-when").textContent = t(weekly ? "street.week" : "street.day");
    document.querySelector("#trend-table tbody").replaceChildren(...(rows.length ? rows.map((r) => el("tr", {},
      el("th", { scope: "row", text: r.label }), el("td", { class: "num", text: fmt.num(r.lifts) }),
      el("td", { class: "num", text: fmt.num(r.contaminated) }),
      el("td", { class: "num", text: r.lifts ? fmt.pct(r.contaminated / r.lifts) : "–" }))) :
      [el("tr", {}, el("td", { colspan: "4", text: t("common.none") }))]));
  }

  function trendChart(daily) {
    const { weekly, rows } = buckets(daily);
    trendTable(weekly, rows);
    const few = rows.filter((r) => r.lifts && r.lifts < minLifts).length;
    document.getElementById("trend-note").textContent = few
      ? t(weekly ? "street.trend_few_week" : "street.trend_few_day", { n: minLifts, count: few }) : "";
    new Chart(document.getElementById("trend-chart"), {
      data: {
        labels: rows.map((r) => r.label),
        datasets: [
          { type: "line", label: t(weekly ? "street.trend_rate_week" : "street.trend_rate"), yAxisID: "rate",
            borderColor: "#b2182b", backgroundColor: "#b2182b", spanGaps: true, tension: 0.2, pointRadius: 3,
            data: rows.map((r) => (r.lifts >= minLifts ? (100 * r.contaminated) / r.lifts : null)) },
          { type: "bar", label: t(weekly ? "street.trend_lifts_week" : "street.trend_lifts"), yAxisID: "lifts",
            backgroundColor: "rgba(33,102,172,0.35)", data: rows.map((r) => r.lifts) },
        ],
      },
      options: {
        maintainAspectRatio: false, animation: false, locale: Trivue.locale,
        interaction: { mode: "index", intersect: false },
        scales: {
          rate: { position: "left", min: 0, suggestedMax: 30, title: { display: true, text: "%" } },
          lifts: { position: "right", min: 0, grid: { drawOnChartArea: false }, ticks: { precision: 0 } },
        },
      },
    });
  }

  /* Errors of every stream summed per category; "info" (missed recycling) is not contamination. */
  function byCategory(errors) {
    const totals = new Map();
    for (const e of errors.filter((x) => x.severity !== "info")) {
      const row = totals.get(e.category) || { category: e.category, items: 0, lifts: 0 };
      row.items += e.items;
      row.lifts += e.lifts;
      totals.set(e.category, row);
    }
    return [...totals.values()].sort((a, b) => b.items - a.items);
  }

  function breakdown(errors) {
    const body = document.querySelector("#breakdown tbody");
    document.getElementById("breakdown").hidden = false;  // hidden while empty: no header without cells
    const max = Math.max(1, ...errors.map((e) => e.items));
    if (!errors.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "2", text: t("common.none") })));
      return;
    }
    body.replaceChildren(...errors.map((e) => el("tr", {},
      el("th", { scope: "row" }, label("cat", e.category),
        el("span", { class: "bar", style: `width:${(100 * e.items) / max}%`, "aria-hidden": "true" })),
      el("td", { class: "num", text: fmt.num(e.items) }))));
  }

  function errorText(errors) {
    return (errors || []).map((e) => `${label("class", e.class)} × ${e.count}`).join(", ");
  }

  /* Photos from wire 1.1 trucks carry no drawn boxes (they are labelling material): the model's boxes
     are drawn over them here, the wrong items in red, the others in green. */
  function overlay(link, img, lift) {
    const boxes = lift.evidence.boxes || [];
    if (!boxes.length) return;
    img.setAttribute("style", `aspect-ratio: ${lift.evidence.width} / ${lift.evidence.height}`);
    // A lift not judged (wire 1.4) has no wrong item: its boxes are drawn, none of them red.
    const wrong = new Set(lift.view_unusable ? []
      : (lift.errors || []).filter((e) => e.severity !== "info").map((e) => e.class));
    for (const b of boxes) {
      link.append(el("span", { class: `photo-box ${wrong.has(b.class) ? "wrong" : "ok"}`, "aria-hidden": "true",
        style: `left:${100 * b.x1}%;top:${100 * b.y1}%;width:${100 * (b.x2 - b.x1)}%;height:${100 * (b.y2 - b.y1)}%` }));
    }
  }

  /* A manager judges the truck wrong (a household's complaint, a plainly wrong detection): the lift then
     counts as clean in every figure; the panel says who did it, when and why, and offers the undo. */
  function overruleBox(lift) {
    const box = el("div", { class: "overrule" });
    const say = el("p", { class: "small error", role: "alert" });  // a refusal, next to the form
    const act = async (method, body) => {
      const init = { method, headers: { "Content-Type": "application/json", Accept: "application/json" } };
      if (body) init.body = JSON.stringify(body);
      const next = await api(`/api/lifts/${encodeURIComponent(lift.event_id)}/overrule`, null, init);
      const fresh = overruleBox(next);
      box.replaceWith(fresh);
      fresh.querySelector("button").focus();  // the undo (or the overrule again): the keyboard stays here
      // Said by the page's status line (there from the start, so screen readers announce it).
      status.classList.remove("error");
      status.textContent = t(method === "POST" ? "street.overrule_done" : "street.overrule_undone");
      refreshFigures().catch((error) => Trivue.showError(status, error));
    };
    if (lift.overruled) {
      const o = lift.overruled;
      const undo = el("button", { type: "button", class: "button", text: t("street.overrule_undo") });
      undo.addEventListener("click", () => act("DELETE").catch((error) => Trivue.showError(say, error)));
      box.append(el("p", { class: "overruled small" }, el("strong", { text: t("street.overruled") }), el("br"),
        t("street.overruled_by", { by: o.by || "–", date: fmt.dateTime(o.at) }), el("br"),
        t("street.overruled_reason", { reason: o.reason || "–" })), undo, say);
      return box;
    }
    const id = `overrule-${lift.event_id}`;
    const open = el("button", { type: "button", class: "button", "aria-expanded": "false", "aria-controls": id,
      text: t("street.overrule") });
    const reason = el("textarea", { id: `${id}-reason`, name: "reason", rows: "2", maxlength: "300", required: true,
      "aria-describedby": `${id}-hint` });
    const form = el("form", { id, class: "overrule-form", hidden: true },
      el("label", { for: `${id}-reason`, text: t("street.overrule_reason") }), reason,
      el("p", { id: `${id}-hint`, class: "muted small", text: t("street.overrule_hint") }),
      el("button", { type: "submit", class: "button primary", text: t("street.overrule_confirm") }),
      el("button", { type: "button", class: "button", text: t("street.overrule_cancel") }));
    const toggle = (shown) => {
      form.hidden = !shown;
      open.setAttribute("aria-expanded", String(shown));
      (shown ? reason : open).focus();
    };
    open.addEventListener("click", () => toggle(form.hidden));
    form.querySelector("button[type=button]").addEventListener("click", () => toggle(false));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!reason.value.trim()) {
        say.textContent = t("street.overrule_empty");
        reason.focus();
        return;
      }
      act("POST", { reason: reason.value.trim() }).catch((error) => Trivue.showError(say, error));
    });
    box.append(open, form, say);
    return box;
  }

  /* After an overrule or its undo: the street's figures as they now stand. */
  async function refreshFigures() {
    const street = await api(`/api/streets/${encodeURIComponent(config.streetId)}`, filters);
    kpis(street);
    breakdown(byCategory(street.errors || []));
  }

  /* The camera saw nothing usable (wire 1.4): the truck's detections are no judgement, and the lift
     counts in no figure; said before anything else on the card, so it is not read as contaminated. */
  function notJudged(lift) {
    return el("p", { class: "not-judged small", "data-view-unusable": lift.view_unusable },
      el("strong", { text: t("street.view_unusable", { problem: t(`fleet.view_${lift.view_unusable}`) }) }),
      el("br"), t("street.view_unusable_hint"));
  }

  function card(lift) {
    const errors = errorText(lift.errors);
    const caption = el("figcaption", {},
      el("strong", { text: fmt.dateTime(lift.started_at) }), el("br"),
      `${t("street.truck")} ${lift.truck_id}`, el("br"),
      lift.view_unusable && errors ? t("street.view_seen", { errors }) : errors);
    if (lift.view_unusable) caption.prepend(notJudged(lift));
    if (lift.address && lift.address.label) caption.append(el("br"), lift.address.label);
    // The model that judged the lift, for a disputed lift: its version, and the file's hash where the
    // truck sent it (wire 1.2: the INT8 and FP32 files of a version share the version).
    if (lift.model) {
      const sha = lift.model.sha256 ? ` · ${lift.model.sha256.slice(0, 12)}` : "";
      caption.append(el("br"), el("span", { class: "muted small", "data-model": lift.model.sha256 || "",
        title: lift.model.sha256 ? `sha256 ${lift.model.sha256}` : null,
        text: t("street.model", { version: lift.model.version, sha }) }));
    }
    const alt = t("street.photo_alt", { date: fmt.dateTime(lift.started_at), truck: lift.truck_id });
    const figure = el("figure", {});
    if (lift.evidence) {
      const img = el("img", { src: lift.evidence.url, alt,
        loading: "lazy", width: "320", height: "240" });
      const link = el("a", { href: lift.evidence.url, target: "_blank", rel: "noopener", class: "photo-boxes" }, img);
      overlay(link, img, lift);
      img.addEventListener("error", () => link.replaceWith(el("div", { class: "no-photo", text: t("street.no_photo") })));
      figure.append(link);
    } else {
      figure.append(el("div", { class: "no-photo", text: t("street.no_photo") }));
    }
    figure.append(caption);
    // Not judged: nothing to overrule (« compte désormais comme conforme » would be false); an overrule
    // made before is still shown, with its undo.
    // A mairie's account limited to its communes may not overrule (the server refuses it: 403).
    if ((lift.view_unusable && !lift.overruled) || !canOverrule) return el("li", {}, figure);
    return el("li", {}, figure, overruleBox(lift));
  }

  let canOverrule = false;
  async function recent(me) {
    if (!me || !["manager", "admin"].includes(me.role)) {
      document.getElementById("recent-hidden").hidden = false;
      return;
    }
    canOverrule = me.communes === null || me.communes === undefined;
    // The photos of the period and stream the page shows, not the street's latest of all time.
    const page = await api("/api/lifts", { street_id: config.streetId, contaminated: "true", limit: 10,
      stream: filters.stream, day_since: filters.since, day_until: filters.until });
    const lifts = page.items || [];
    const list = document.getElementById("recent");
    if (!lifts.length) list.replaceChildren(el("li", { class: "muted", text: t("common.none") }));
    else list.replaceChildren(...lifts.map(card));
  }

  async function load() {
    // A hand-edited link with its dates out of order: said in the reader's language, not the API's
    // English 422 (the map's filters never put such dates in a link).
    const outside = period === "custom" && !(Trivue.inRange(filters.since) && Trivue.inRange(filters.until));
    if (outside || (period === "custom" && filters.since && filters.until && filters.since > filters.until)) {
      status.textContent = t(outside ? "filters.dates_range" : "filters.dates_order");
      status.classList.add("error");
      document.body.dataset.ready = "error";
      return;
    }
    try {
      const street = await api(`/api/streets/${encodeURIComponent(config.streetId)}`, filters);
      kpis(street);
      trendChart(street.daily || []);
      breakdown(byCategory(street.errors || []));
      await recent(await Trivue.me);
      status.textContent = "";
      document.body.dataset.ready = "true";
    } catch (error) {
      if (error.status === 404) status.textContent = t("street.not_found");
      else Trivue.showError(status, error);
      document.body.dataset.ready = "error";
    }
  }
  load();
})();

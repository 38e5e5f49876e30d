/* Qualité des données: rejected messages, lifts without a street, street-match confidence. */
"use strict";

(() => {
  const { t, api, fmt, el } = Trivue;
  const status = document.getElementById("quality-status");
  const DEAD_LIMIT = 50;  // the newest rejected messages listed

  function confidenceChart(histogram) {
    const labels = histogram.map((b) => fmt.band(Math.round(b.low * 100), Math.round(b.high * 100)));
    // The same bars as a table (RGAA 1.6): a canvas gives a screen reader only its title.
    document.querySelector("#confidence-table tbody").replaceChildren(...histogram.map((b, i) => el("tr", {},
      el("th", { scope: "row", text: labels[i] }), el("td", { class: "num", text: fmt.num(b.lifts) }))));
    new Chart(document.getElementById("confidence-chart"), {
      type: "bar",
      data: {
        labels,
        datasets: [{ label: t("common.lifts"), data: histogram.map((b) => b.lifts), backgroundColor: "#2166ac" }],
      },
      options: {
        maintainAspectRatio: false, animation: false, locale: Trivue.locale,
        plugins: { legend: { display: false } },
        scales: { x: { title: { display: true, text: t("quality.confidence_axis") } }, y: { min: 0 } },
      },
    });
  }

  // Lifts whose street stays uncertain from the truck's path: counted in the likeliest street, listed here.
  // Each street opens on the days counted here (since the first day whose lifts are all kept), not on
  // the street page's default 3 months: the lifts a reader compares then come from the same days.
  function ambiguousStreets(rows, quality) {
    const since = quality.ambiguous_since || quality.since;
    const until = quality.until || Trivue.today();
    const days = since ? `?${new URLSearchParams({ period: "custom", since, until })}` : "";
    const body = document.querySelector("#ambiguous-streets tbody");
    body.replaceChildren(...(rows.length ? rows.map((s) => el("tr", {},
      el("td", {}, el("a", { href: `/rues/${s.street_id}${days}`, text: `${s.name} (${s.commune})` })),
      el("td", { text: fmt.num(s.lifts) }))) :
      [el("tr", {}, el("td", { colspan: "2", text: t("common.none") }))]));
  }

  // A reason's label and what to do (dead.reason.<code>, dead.help.<code>), its code beside it: the
  // CLI's and the API's filters take the code. A code without a label (an old database's) is shown alone.
  const labelled = (code) => Object.prototype.hasOwnProperty.call(Trivue.config.t, `dead.reason.${code}`);
  const reasonCell = (code, ...rest) => el("td", { class: "reason" }, ...(labelled(code) ?
    [el("strong", { text: t(`dead.reason.${code}`), title: t(`dead.help.${code}`) }), " ", el("code", { text: code })] :
    [el("code", { text: code })]), ...rest);

  function deadReasons(counts) {
    const body = document.querySelector("#dead-reasons tbody");
    const codes = Object.keys(counts || {}).sort((a, b) => counts[b] - counts[a] || a.localeCompare(b));
    body.replaceChildren(...(codes.length ? codes.map((code) => el("tr", { "data-reason": code },
      reasonCell(code), el("td", { class: "num", text: fmt.num(counts[code]) }),
      el("td", { class: "help", text: labelled(code) ? t(`dead.help.${code}`) : "" }))) :
      [el("tr", {}, el("td", { colspan: "3", text: t("common.none") }))]));
  }

  function deadLetters(page) {
    deadReasons(page.counts);
    const body = document.querySelector("#dead-letters tbody");
    const rows = page.items || page;
    // Its title counts what it shows (fewer than asked when fewer are kept), never a fixed « 50 ».
    document.getElementById("dead-newest-title").textContent = rows.length
      ? t("quality.dead_newest", { n: fmt.num(rows.length) }) : t("quality.dead_latest");
    body.replaceChildren(...(rows.length ? rows.map((d) => el("tr", {},
      el("td", { text: fmt.dateTime(d.received_at) }),
      el("td", {}, el("code", { text: d.topic })),
      reasonCell(d.reason, d.detail ? el("span", { class: "detail", text: d.detail }) : ""))) :
      [el("tr", {}, el("td", { colspan: "3", text: t("common.none") }))]));
  }

  async function load() {
    try {
      // Raw dead letters are household-level data (manager); a viewer sees the counts only.
      const me = await Trivue.me;
      const manager = me && ["manager", "admin"].includes(me.role);
      const [quality, dead] = await Promise.all([api("/api/data-quality"),
        manager ? api("/api/dead-letters", { limit: DEAD_LIMIT }) : null]);
      document.getElementById("kpi-matched").textContent = fmt.num(quality.matched);
      document.getElementById("kpi-unmatched").textContent = fmt.num(quality.unmatched);
      document.getElementById("kpi-unmatched-detail").textContent = t("quality.unmatched_detail", {
        no_gps: fmt.num(quality.unmatched_no_gps), too_far: fmt.num(quality.unmatched_too_far) });
      document.getElementById("kpi-dead").textContent = fmt.num(quality.dead_letters);
      document.getElementById("kpi-view-unusable").textContent = fmt.num(quality.view_unusable);
      // What each figure counts: the lifts since the first day all are kept (the retention has
      // taken the older ones from the ambiguous count, not from the roll-up), the rejected
      // messages since theirs.
      if (quality.since) {
        document.getElementById("quality-period").textContent = t("quality.period", { since: fmt.date(quality.since) });
      }
      if (quality.dead_letters_since) {
        document.getElementById("kpi-dead-since").textContent = t("quality.dead_letters_since", {
          since: fmt.date(quality.dead_letters_since) });
      }
      // Whole messages kept for a replay (an unregistered truck's photos), against their cap.
      const held = quality.dead_letters_held;
      const mb = (bytes) => fmt.num(Math.round(bytes / 104857.6) / 10);
      document.getElementById("kpi-dead-held").textContent = t("quality.dead_letters_held", {
        letters: fmt.num(held.letters), size: mb(held.bytes), limit: mb(held.limit_bytes) });
      document.getElementById("kpi-ambiguous").textContent = fmt.num(quality.ambiguous);
      ambiguousStreets(quality.ambiguous_by_street, quality);
      confidenceChart(quality.confidence_histogram);
      if (dead) deadLetters(dead);
      else document.getElementById("dead-title").closest("section").hidden = true;
      status.textContent = "";
      document.body.dataset.ready = "true";
    } catch (error) {
      Trivue.showError(status, error);
    }
  }
  load();
})();

/* Reminders review page, the effect panel: a campaign's verdict, balance and method, the before/after
   table, and the weekly chart with the send marked (and its data as a table). Kept apart from
   reminders.js, which calls Trivue.reminderEffect(id) once a campaign is chosen. */
"use strict";

(() => {
  const { t, tn, api, el, fmt } = Trivue;
  const $ = (id) => document.getElementById(id);
  let chart = null;

  function pctCell(period) {
    if (!period || period.rate === null) return el("td", { class: "num", text: `– (${tn("rem.n_lifts", { n: period ? period.lifts : 0 })})` });
    const ci = `[${fmt.pct(period.ci[0])} – ${fmt.pct(period.ci[1])}]`;
    return el("td", { class: "num" }, `${fmt.pct(period.rate)} `, el("span", { class: "muted small", text: `${ci} · ${tn("rem.n_lifts", { n: period.lifts })}` }));
  }

  async function loadEffect(id) {
    const report = await api(`/api/reminders/campaigns/${id}/effect`);
    const windows = report.windows ? ` ${t("rem.before")}${t("rem.colon")}${fmt.dateTime(report.windows.before[0])} → ${fmt.dateTime(report.windows.before[1])}${t("rem.semicolon")}` +
      `${t("rem.after")}${t("rem.colon")}${fmt.dateTime(report.windows.after[0])} → ${fmt.dateTime(report.windows.after[1])}` +
      (report.partial ? ` (${t("rem.partial")})` : "") : "";
    $("effect-verdict").textContent = report.text + windows;
    const details = [];
    if (report.balance) {
      const two = new Intl.NumberFormat(document.documentElement.lang || "fr", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
      const smd = (v) => (v === null ? "–" : two.format(v));
      details.push(t("rem.balance", { max: two.format(report.balance.max_smd), rate: smd(report.balance.rate), volume: smd(report.balance.log_lifts) }));
    }
    const est = report.estimate;
    if (est && est.did !== null && est.ci) {
      details.push(t("rem.estimate", { did: fmt.points(est.did), low: fmt.points(est.ci[0]), high: fmt.points(est.ci[1]) }) +
        (est.conclusive ? "" : ` ${t("rem.indicative")}`));
    }
    if (est) details.push(t("rem.method", { label: est.label, draws: fmt.num(est.draws) }));
    $("effect-details").replaceChildren(...details.map((text) => el("li", { text })));
    const groups = report.groups || {};
    // A street-only campaign has no household: no row of dashes for them (as the command's report).
    const names = ["targeted", "control", "households"].filter((g) => groups[g] && (g !== "households" || groups[g].units));
    $("effect-table").querySelector("tbody").replaceChildren(...names.map((g) => el("tr", {},
      el("th", { scope: "row", text: t("rem.group." + g) }), pctCell(groups[g].before), pctCell(groups[g].after),
      el("td", { class: "num", text: groups[g].change === null ? "–" : `${fmt.points(groups[g].change)} pts` }))));
    $("effect-table-box").hidden = !names.length;
    drawChart(report.series);
  }

  // Marks the send between week -1 and week 0: a vertical line drawn after the datasets.
  const sendLine = {
    id: "sendLine",
    afterDatasetsDraw(c) {
      const x = c.scales.x;
      const at = c.data.labels.indexOf(0);
      if (at < 1) return;
      const px = (x.getPixelForValue(at - 1) + x.getPixelForValue(at)) / 2;
      const { top, bottom } = c.chartArea;
      const ctx = c.ctx;
      ctx.save();
      ctx.strokeStyle = "#333"; ctx.setLineDash([4, 4]); ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, bottom); ctx.stroke();
      ctx.setLineDash([]); ctx.fillStyle = "#333"; ctx.textAlign = "center"; ctx.fillText(t("rem.sent_marker"), px, top + 10);
      ctx.restore();
    },
  };

  /* The plotted weeks as a table: what a screen reader or a keyboard user reads of the chart. */
  /* Each week's rate with its lifts; a week of fewer than the report's floor (effect.min_lifts, under
     which it says « Trop peu de levées ») has no rate: « – », not 100 % from 3 lifts. */
  const weekCell = (rate, lifts) => el("td", { class: "num" }, rate === null ? "– " : `${fmt.pct(rate)} `,
    el("span", { class: "muted small", text: `· ${tn("rem.n_lifts", { n: lifts })}` }));
  function weeksTable(series) {
    const weeks = series ? series.weeks : [];
    $("effect-weeks").hidden = !weeks.length;
    const lifts = (name, i) => ((series[`${name}_lifts`] || [])[i] || 0);
    $("effect-weeks-table").tBodies[0].replaceChildren(...weeks.map((week, i) => el("tr", {},
      el("th", { scope: "row", text: String(week) }), weekCell(series.targeted[i], lifts("targeted", i)),
      weekCell(series.control[i], lifts("control", i)))));
    const thin = weeks.some((_, i) => ["targeted", "control"].some((g) => lifts(g, i) && series[g][i] === null));
    $("effect-weeks-note").hidden = !thin || !series.min_lifts;
    $("effect-weeks-note").textContent = series && series.min_lifts ? t("rem.week_floor", { min: fmt.num(series.min_lifts) }) : "";
  }

  // The tooltip says the week's lifts under each rate (a rate alone hid how thin a week was).
  const liftsFooter = (series) => (items) => items.map((item) => {
    const name = item.datasetIndex === 0 ? "targeted" : "control";
    return `${item.dataset.label}${t("rem.colon")}${tn("rem.n_lifts", { n: (series[`${name}_lifts`] || [])[item.dataIndex] || 0 })}`;
  });

  function drawChart(series) {
    weeksTable(series);
    if (typeof Chart === "undefined") return;
    if (chart) chart.destroy();
    chart = null;
    $("effect-chart-box").hidden = !series || !series.weeks.length; // not sent yet: no empty box
    if ($("effect-chart-box").hidden) return;
    const pct = (values) => values.map((v) => (v === null ? null : v * 100));
    chart = new Chart($("effect-chart"), {
      type: "line",
      data: { labels: series.weeks, datasets: [
        { label: t("rem.group.targeted"), data: pct(series.targeted), borderColor: "#d73027", backgroundColor: "#d73027", spanGaps: true },
        { label: t("rem.group.control"), data: pct(series.control), borderColor: "#4575b4", backgroundColor: "#4575b4", borderDash: [6, 3], spanGaps: true }] },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { tooltip: { callbacks: { footer: liftsFooter(series) } } },
        scales: { x: { title: { display: true, text: t("rem.week") } },
          y: { beginAtZero: true, title: { display: true, text: t("rem.rate_axis") } } } },
      plugins: [sendLine],
    });
  }

  Trivue.reminderEffect = loadEffect;
})();

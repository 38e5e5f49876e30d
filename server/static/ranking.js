/* Classement: worst streets of the period and most improved against the period before (or the same
   period last year); sortable, CSV. */
"use strict";

(() => {
  const { t, api, fmt, el, label } = Trivue;
  const form = document.getElementById("filters");
  const status = document.getElementById("ranking-status");
  const tables = {};
  /* Rows shown at first and added by « Voir plus »: three years of a métropole put 1,431 rows
     (11,586 DOM nodes, a 53,253-pixel page: docs/performance.md) in the table at once. The CSV keeps every row. */
  const PAGE = 50;

  const topErrors = (row) => (row.top_errors || []).map((e) => label("cat", e.category ?? e)).join(", ");
  const COLUMNS = {
    worst: [
      { key: "name", title: "ranking.street", link: true },
      { key: "commune", title: "ranking.commune" },
      { key: "lifts", title: "ranking.lifts", num: true, show: fmt.num },
      { key: "rate", title: "ranking.rate", num: true, show: fmt.pct },
      { key: "ci", title: "ranking.ci", value: (r) => r.ci_low, show: (_, r) => `${fmt.pct(r.ci_low)} – ${fmt.pct(r.ci_high)}` },
      { key: "top_errors", title: "ranking.top_errors", value: topErrors, show: (v) => v },
    ],
    improved: [
      { key: "name", title: "ranking.street", link: true },
      { key: "commune", title: "ranking.commune" },
      { key: "before", title: "ranking.before", num: true, show: fmt.pct },
      { key: "rate", title: "ranking.after", num: true, show: fmt.pct },
      { key: "change", title: "ranking.change", num: true, show: fmt.points },
      { key: "change_ci", title: "ranking.change_ci", value: (r) => r.change_high,
        show: (_, r) => `${fmt.points(r.change_low)} – ${fmt.points(r.change_high)}` },
      { key: "lifts", title: "ranking.lifts", num: true, show: fmt.num },
    ],
  };

  const valueOf = (column, row) => (column.value ? column.value(row) : row[column.key]);
  /* With an error type chosen the "rate" column is the share of lifts with that error (as on the map):
     headed so, not « Taux », which reads as the contamination rate. Only the heading: the CSV keeps
     its machine-stable column names. */
  let category = "";
  const heading = (c) => (c.key === "rate" && c.title === "ranking.rate" && category
    ? t("ranking.share", { category: label("cat", category) }) : t(c.title));

  function render(id) {
    const { rows, sort, shown } = tables[id];
    const columns = COLUMNS[id];
    const column = columns.find((c) => c.key === sort.key);
    const sorted = [...rows].sort((a, b) => {
      const x = valueOf(column, a), y = valueOf(column, b);
      const order = typeof x === "string" ? x.localeCompare(y, Trivue.locale) : x - y;
      return sort.dir === "asc" ? order : -order;
    });
    const table = document.getElementById(id);
    // The header is built once and only its aria-sort changes: the sort button keeps the keyboard
    // focus (a rebuilt button would send the next Tab back to the top of the page).
    if (!table.tHead) {
      table.replaceChildren(el("thead", {}, el("tr", {}, ...columns.map((c) => {
        const button = el("button", { type: "button", class: "sort" });
        button.addEventListener("click", () => {
          const current = tables[id].sort;
          tables[id].sort = { key: c.key, dir: current.key === c.key && current.dir === "desc" ? "asc" : "desc" };
          render(id);
        });
        return el("th", { scope: "col", class: c.num ? "num" : null, "data-key": c.key }, button);
      }))), el("tbody"));
    }
    for (const [i, th] of [...table.tHead.rows[0].cells].entries()) {
      const button = th.querySelector("button");
      const title = heading(columns[i]);
      if (button.textContent !== title) {  // the error type changed (the button itself stays, with the focus)
        button.textContent = title;
        button.setAttribute("aria-label", t("ranking.sort", { column: title }));
      }
      if (th.dataset.key === sort.key) th.setAttribute("aria-sort", sort.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    const body = sorted.length ? sorted.slice(0, shown).map((row) => el("tr", {}, ...columns.map((c) => {
      const value = valueOf(c, row);
      const text = c.show ? c.show(value, row) : value ?? "";
      const content = c.link ? el("a", { href: `/rues/${row.street_id}${location.search}`, text }) : text;
      return el(c.link ? "th" : "td", { class: c.num ? "num" : null, scope: c.link ? "row" : null }, content);
    }))) : [el("tr", {}, el("td", { colspan: String(columns.length), text: t("common.none") }))];
    table.tBodies[0].replaceChildren(...body);
    document.getElementById(`${id}-more`).hidden = sorted.length <= shown;
    document.getElementById(`${id}-shown`).textContent = t("ranking.shown", {
      shown: fmt.num(Math.min(shown, sorted.length)), total: fmt.num(sorted.length) });
  }

  // Same rule as server/csvexport.py: a JS number (a negative change in points) stays a number;
  // text starting with = + - @ tab or CR (an OSM street name) gets a leading ' so that no
  // spreadsheet evaluates it as a formula (CSV injection). The separator and decimal mark follow the
  // page's language, as its reader's spreadsheet does: a French one splits on ";" and reads "0.425"
  // as text (or a date), an English one splits on "," and reads "0,425" as text.
  // No exponent either (a rounding residue of 5e-17 would be text): up to 12 decimals, no grouping.
  const french = Trivue.locale.startsWith("fr");
  const SEP = french ? ";" : ",", POINT = french ? "," : ".";
  const decimal = new Intl.NumberFormat("en-US", { useGrouping: false, maximumFractionDigits: 12 });
  function csvCell(value) {
    if (typeof value === "number") return Number.isFinite(value) ? decimal.format(value).replace(".", POINT) : "";
    const raw = value === null || value === undefined ? "" : String(value);
    const text = /^[=+\-@\t\r]/.test(raw) ? `'${raw}` : raw;
    return /[",;\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;  // either separator: quoted
  }

  function exportCsv(id) {
    const columns = COLUMNS[id];
    const pairs = { ci: ["ci_low", "ci_high"], change_ci: ["change_low", "change_high"] };  // two cells each
    const head = ["street_id", ...columns.map((c) => pairs[c.key] ? pairs[c.key].join(SEP) : c.key)].join(SEP);
    const lines = tables[id].rows.map((row) => [row.street_id, ...columns.map((c) =>
      pairs[c.key] ? pairs[c.key].map((k) => csvCell(row[k])).join(SEP) : csvCell(valueOf(c, row)))].join(SEP));
    // A BOM in both languages: without it a spreadsheet reads the UTF-8 (« é ») as Latin-1.
    const blob = new Blob(["\ufeff" + [head, ...lines].join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `trivue-${id}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
  }

  /* 95 % interval of a change of rate, after minus before (Newcombe 1998, method 10: the hybrid
     score interval, built from each period's Wilson interval, which the API already gives). It
     treats lifts as independent; those of one street share households, so the true uncertainty
     is if anything larger: a drop this interval cannot tell from zero is certainly not shown. */
  function changeInterval(after, before) {
    const change = after.rate - before.rate;
    return {
      change,
      change_low: change - Math.hypot(after.rate - after.ci_low, before.ci_high - before.rate),
      change_high: change + Math.hypot(after.ci_high - after.rate, before.rate - before.ci_low),
    };
  }
  Trivue.changeInterval = changeInterval;  // for the tests

  /* The period compared with: a selection of whole calendar months (a month, a quarter, a year) is
     compared with as many whole months just before it, so that March is compared with February and
     2025 with 2024, not with the same number of days (29 January - 28 February; a year after a leap
     year without its 1st of January). Any other selection: the same number of days just before. */
  function previousPeriod(values) {
    const firstOfMonth = (day) => day.endsWith("-01");
    if (firstOfMonth(values.since) && firstOfMonth(Trivue.addDays(values.until, 1))) {
      const [y1, m1] = values.since.split("-").map(Number);
      const [y2, m2] = values.until.split("-").map(Number);
      const months = (y2 - y1) * 12 + (m2 - m1) + 1;
      const since = new Date(Date.UTC(y1, m1 - 1 - months, 1)).toISOString().slice(0, 10);
      return { since, until: Trivue.addDays(values.since, -1) };
    }
    const days = Math.round((Date.parse(values.until) - Date.parse(values.since)) / 86400000) + 1;
    return { since: Trivue.addDays(values.since, -days), until: Trivue.addDays(values.since, -1) };
  }

  /* The same dates one year earlier, for a yearly review ("the same period last year"): the seasons
     (holidays, summer) then weigh the same on both sides. 29 February has no twin: the 28th. */
  function lastYear(day) {
    const [y, m, d] = day.split("-");
    return `${String(Number(y) - 1).padStart(4, "0")}-${m}-${m === "02" && d === "29" ? "28" : d}`;
  }
  const comparedPeriod = (values) => (values.compare === "year"
    ? { since: lastYear(values.since), until: lastYear(values.until) } : previousPeriod(values));

  /* Streets of a selection with at least min_lifts: their contamination rate, or with an error type
     chosen, the share of lifts with that error (the map's text alternative shows what the map shows). */
  async function rows(query, category) {
    const streets = (await api("/api/streets", query)).streets.filter((r) => r.lifts >= query.min_lifts);
    if (!category) return streets;
    const byId = new Map(streets.map((r) => [r.street_id, r]));
    const shares = await api("/api/error-rates", { ...query, category });
    return shares.items.filter((r) => byId.has(r.street_id)).map((r) => ({ ...byId.get(r.street_id), ...r }));
  }

  const ticket = Trivue.newestOnly();

  async function load(values) {
    const latest = ticket();
    status.textContent = t("common.loading");
    const minLifts = Trivue.minLifts(values.min_lifts);
    const common = { stream: values.stream, commune: values.commune, min_lifts: minLifts };
    try {
      const current = { ...common, since: values.since, until: values.until };
      const before = comparedPeriod(values);
      const previous = { ...common, ...before };
      const [now, thenRows] = await Promise.all([rows(current, values.category), rows(previous, values.category)]);
      if (!latest()) return; // a newer filter change is on its way: its answer is shown instead
      category = values.category || "";
      const then = new Map(thenRows.map((r) => [r.street_id, r]));
      tables.worst = { rows: now, sort: tables.worst?.sort || { key: "rate", dir: "desc" }, shown: PAGE };
      // Only drops larger than chance: the streets with few lifts swing most from one period to
      // the next, so ranking every drop by its size put noise (and regression to the mean: last
      // period's unlucky streets) at the top. A drop is listed when its 95 % interval is below zero.
      const improved = now.filter((r) => then.has(r.street_id))
        .map((r) => ({ ...r, before: then.get(r.street_id).rate, ...changeInterval(r, then.get(r.street_id)) }))
        .filter((r) => r.change_high < 0);
      tables.improved = { rows: improved, sort: tables.improved?.sort || { key: "change", dir: "asc" }, shown: PAGE };
      render("worst");
      render("improved");
      const year = values.compare === "year";
      document.getElementById("compare-hint").textContent = t(`ranking.compare_hint.${year ? "year" : "previous"}`);
      const against = year ? "ranking.improved_against_year" : "ranking.improved_against";
      document.getElementById("improved-against").textContent = t(against, {
        since: fmt.date(before.since), until: fmt.date(before.until), from: fmt.date(values.since), to: fmt.date(values.until) });
      Trivue.fillCommunes(form.elements.commune, new Set(now.map((r) => r.commune).filter(Boolean)));
      status.textContent = "";
      document.body.dataset.ready = "true";
    } catch (error) {
      if (latest()) Trivue.showError(status, error);
    }
  }

  for (const button of document.querySelectorAll("[data-more]")) {
    button.addEventListener("click", () => {
      const table = tables[button.dataset.more];
      if (!table) return;
      table.shown += PAGE;
      render(button.dataset.more);
    });
  }
  for (const button of document.querySelectorAll("[data-export]")) {
    button.addEventListener("click", () => tables[button.dataset.export] && exportCsv(button.dataset.export));
  }
  /* The comparison choice sits by the table it changes, outside the filter bar, but belongs to the
     form (form="filters"): setupFilters reads it from the link and writes it back. Its change event
     bubbles to its own ancestors, not to the form: passed on so the form's listener handles it. */
  const compare = form.elements.compare;
  compare.addEventListener("change", () => form.dispatchEvent(new Event("change")));
  // Dates out of order in the link: the filters say so and nothing is asked (the API would answer 422).
  const first = Trivue.setupFilters(form, load);
  if (compare.selectedIndex < 0) compare.value = "";  // an unknown choice in a hand-edited link: the default
  if (first) load(first);
  else status.textContent = "";
})();

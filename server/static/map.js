/* Carte: every street drawn from its own geometry (no tile server needed), coloured by its rate. */
"use strict";

(() => {
  const { config, t, api, fmt, el, CLASSES, TOO_FEW, rateClass, swatch } = Trivue;
  const form = document.getElementById("filters");
  const summary = document.getElementById("map-summary");
  const worstList = document.getElementById("worst-list");

  // padding 0: the canvas stays inside the map box (Leaflet's default draws 10 % beyond it, hidden by
  // overflow but seen by accessibility checkers as covering the filters and the legend).
  const map = L.map("map", { renderer: L.canvas({ padding: 0 }), zoomSnap: 0.25, attributionControl: true,
    zoomControl: false });
  const icon = (path) => `<svg width="14" height="14" viewBox="0 0 14 14" focusable="false"><path d="${path}" ` +
    'stroke="currentColor" stroke-width="2.2" fill="none"/></svg>';
  L.control.zoom({ zoomInTitle: t("map.zoom_in"), zoomOutTitle: t("map.zoom_out"),
    zoomInText: icon("M1 7h12M7 1v12"), zoomOutText: icon("M1 7h12") }).addTo(map);
  map.attributionControl.setPrefix(false);
  // The basemap of the settings (server/basemap.py): none, a PMTiles file of this server, or tiles.
  const basemap = config.basemap || { kind: "none" };
  const tileOptions = { maxZoom: 20, maxNativeZoom: basemap.maxZoom, attribution: basemap.attribution || "" };
  if (basemap.kind === "pmtiles") {
    pmtiles.leafletRasterLayer(new pmtiles.PMTiles(basemap.url), tileOptions).addTo(map);
  } else if (basemap.kind === "xyz") {
    L.tileLayer(basemap.url, tileOptions).addTo(map);
  }
  document.body.dataset.basemap = basemap.kind;
  map.attributionControl.addAttribution(t("map.attribution"));  // ODbL: the credit, in the reader's language
  map.setView(config.mapCenter || [46.6, 2.4], config.mapCenter ? 13 : 6);

  let network = null; // L.GeoJSON of every street, drawn once
  let networkDrawn = null; // the promise of that drawing
  let minLifts = Trivue.minLifts();
  let commune = "";
  const stats = new Map(); // street_id -> statistics of the current filters

  const props = (feature) => ({ ...feature.properties, ...(stats.get(feature.properties.street_id) || { lifts: 0 }) });
  const judged = (p) => p.lifts >= minLifts;
  const visible = (p) => !commune || p.commune === commune;
  function style(feature) {
    const p = props(feature);
    if (!visible(p)) return { opacity: 0, weight: 0 };
    const cls = rateClass(p.rate, judged(p));
    return { color: cls.color, weight: cls.weight, dashArray: cls.dash, opacity: judged(p) ? 0.95 : 0.55 };
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function tooltip(p) {
    const rate = judged(p) ? `${fmt.pct(p.rate)} (${fmt.pct(p.ci_low)} – ${fmt.pct(p.ci_high)})` : t("map.too_few");
    return `<strong>${escapeHtml(p.name)}</strong><br>${escapeHtml(p.commune || "")}<br>` +
      `${rate}<br>${t("common.n_lifts", { n: fmt.num(p.lifts) })}`;
  }

  const streetHref = (id) => `/rues/${encodeURIComponent(id)}${location.search}`;

  function drawNetwork(collection) {
    network = L.geoJSON(collection, {
      style,
      onEachFeature(feature, path) {
        path.bindTooltip(() => tooltip(props(feature)), { sticky: true });
        path.on("click", () => visible(props(feature)) && location.assign(streetHref(feature.properties.street_id)));
      },
    }).addTo(map);
    if (collection.features.length) map.fitBounds(network.getBounds(), { padding: [12, 12] });
    Trivue.fillCommunes(form.elements.commune,
      new Set(collection.features.map((f) => f.properties.commune).filter(Boolean)));
  }

  function describe() {
    const names = new Map();
    network.eachLayer((path) => names.set(path.feature.properties.street_id, path.feature.properties));
    const rows = [...stats.values()].filter((s) => names.has(s.street_id))
      .map((s) => ({ ...names.get(s.street_id), ...s })).filter(visible);
    const lifts = rows.reduce((sum, p) => sum + p.lifts, 0);
    const judgedRows = rows.filter(judged);
    summary.classList.remove("error");
    if (!names.size) {
      summary.textContent = t("map.no_streets");
      return;
    }
    summary.textContent = t("map.summary", {
      streets: fmt.num([...names.values()].filter(visible).length), lifts: fmt.num(lifts),
      judged: fmt.num(judgedRows.length),
    });
    const worst = judgedRows.sort((a, b) => b.rate - a.rate).slice(0, 10).map((p) =>
      el("li", {}, el("a", { href: streetHref(p.street_id) },
        swatch(rateClass(p.rate, true)),
        `${p.name} — ${fmt.pct(p.rate)} (${t("common.n_lifts", { n: fmt.num(p.lifts) })})`)));
    // No street judged (a new deployment, a stream not collected): say so under the panel's title.
    worstList.replaceChildren(...(worst.length ? worst : [el("li", { class: "muted", text: t("common.none") })]));
  }

  /* With an error type chosen the colours are the share of lifts with that error, not the rate. */
  function legend(category) {
    document.getElementById("legend-what").textContent = category
      ? t("map.legend_share", { category: Trivue.label("cat", category) }) : t("common.rate");
    const items = CLASSES.map((c) => el("li", {}, swatch(c), c.label));
    items.push(el("li", {}, swatch(TOO_FEW), `${t("map.too_few")} (< ${minLifts})`));
    document.getElementById("legend").replaceChildren(...items);
  }

  /* Statistics of the filters: contamination rate, or the share of lifts with one error type. */
  function fetchStats(values) {
    const period = { since: values.since, until: values.until, stream: values.stream };
    const query = { ...period, commune: values.commune };
    if (values.category) return api("/api/error-rates", { ...query, category: values.category });
    return api("/api/streets", query);
  }

  const ticket = Trivue.newestOnly();

  async function load(values) {
    const current = ticket();
    minLifts = Trivue.minLifts(values.min_lifts);
    // The map's text alternative: the ranking table of the same selection (filters in the query).
    document.getElementById("table-link").href = `/classement${location.search}`;
    commune = values.commune || "";
    legend(values.category);
    summary.textContent = t("common.loading");
    document.body.dataset.mapState = "loading";
    try {
      performance.mark("trivue:map-fetch");
      // The network is drawn (grey) while the statistics are computed, then recoloured in place.
      networkDrawn = networkDrawn || api("/api/network.geojson").then(drawNetwork);
      const data = await fetchStats(values);
      await networkDrawn;
      if (!current()) return; // a newer filter change is on its way: its answer is drawn instead
      performance.mark("trivue:map-fetched");
      stats.clear();
      for (const row of data.items || data.streets) stats.set(row.street_id, row);
      network.setStyle(style);
      describe();
      performance.mark("trivue:map-drawn");
      document.body.dataset.mapState = "ready";
    } catch (error) {
      if (!current()) return;
      if (!network) networkDrawn = null; // try the network again with the next filter change
      Trivue.showError(summary, error);
      document.body.dataset.mapState = "error";
    }
  }

  /* A handle on the drawn map (for the browser tests and anyone debugging in the console). */
  Trivue.mapView = {
    map,
    styleOf(id) {
      let found = null;
      network?.eachLayer((path) => { if (path.feature.properties.street_id === id) found = path.options; });
      return found && { color: found.color, weight: found.weight, opacity: found.opacity, dash: found.dashArray };
    },
    pointOf(lat, lon) { return map.latLngToContainerPoint([lat, lon]); },
  };
  // Dates out of order in the link: the filters say so and no statistics are asked (the API would
  // answer 422); the streets are drawn grey with the legend, ready for the corrected dates.
  const first = Trivue.setupFilters(form, load);
  if (first) load(first);
  else {
    summary.textContent = "";
    legend();
    networkDrawn = api("/api/network.geojson").then(drawNetwork).catch((error) => {
      networkDrawn = null;
      Trivue.showError(summary, error);
    });
  }
})();

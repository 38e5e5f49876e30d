/* Trivue dashboard: what every page shares (config, translations, API calls, formats, filters). */
"use strict";

const Trivue = (() => {
  const config = JSON.parse(document.getElementById("trivue-config").textContent);
  const locale = config.lang === "en" ? "en-GB" : "fr-FR";

  /* {name|singular|plural} in a message is the form that agrees with the count ``params[name]`` by
     the language's plural rules (French 0 and 1 singular: « 0 photo annotée », "0 photos labelled"),
     never « photo(s) ». Trivue.tn (reminders-i18n.js) also formats the numbers it writes. */
  const plurals = new Intl.PluralRules(locale);
  const FORMS = /\{(\w+)\|((?:[^|{}]|\{\w+\})*)\|((?:[^|{}]|\{\w+\})*)\}/g;

  function agree(text, params) {
    return text.replace(FORMS, (whole, name, one, other) => {
      const n = count(params[name]);
      return Number.isNaN(n) ? whole : (plurals.select(n) === "one" ? one : other);
    });
  }

  /* A number, or one written by fmt.num (« 1 234,5 »: the pages pass counts formatted). */
  function count(value) {
    if (typeof value === "number") return value;
    if (typeof value !== "string" || !/^-?[\d\s\u00a0\u202f.,]+$/.test(value)) return NaN;
    const digits = value.replace(/[\s\u00a0\u202f]/g, "");  // French thousands: narrow no-break spaces
    return Number(config.lang === "en" ? digits.replace(/,/g, "") : digits.replace(",", "."));
  }

  /* The filters' « Levées minimum pour juger » (5 in _filters.html): below it a street, a day or a week
     is too few lifts to judge, on the map, the ranking and a street's trend alike. */
  const minLifts = (value) => Math.max(1, Number(value) || 5);

  function t(key, params) {
    let text = agree(Object.prototype.hasOwnProperty.call(config.t, key) ? config.t[key] : key, params || {});
    for (const [name, value] of Object.entries(params || {})) text = text.split(`{${name}}`).join(value);
    return text;
  }

  /* A label for a code (stream, category, class) with the raw code as fallback for new ones. */
  function label(prefix, code) {
    const key = `${prefix}.${code}`;
    return Object.prototype.hasOwnProperty.call(config.t, key) ? config.t[key] : code;
  }

  /* ``code`` and ``params``: a coded refusal's (the labelling API answers ``{detail, code, params}``),
     for a page to word it in its reader's language; the English ``detail`` stays the message. */
  class ApiError extends Error {
    constructor(status, message, code = null, params = {}) {
      super(message);
      Object.assign(this, { status, code, params });
    }
  }

  function toLogin() {
    const next = location.pathname + location.search;
    location.assign(`/login?next=${encodeURIComponent(next)}`);
  }

  function url(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(key, value);
    }
    const text = query.toString();
    return text ? `${path}?${text}` : path;
  }

  /* The server's clock: a reader's PC may run minutes off, and « il y a 10 min » or "today" must be
     the server's. The page brings the server's time (``serverNow``); every API answer's Date header
     (whole seconds) corrects it when the two drift apart by more than its rounding. */
  let clockOffset = Number.isFinite(config.serverNow) ? config.serverNow - Date.now() : 0;
  const serverNow = () => Date.now() + clockOffset;
  function readServerClock(response) {
    const stamp = Date.parse(response.headers.get("Date") || "");
    if (Number.isNaN(stamp)) return;
    const offset = stamp + 500 - Date.now();
    if (Math.abs(offset - clockOffset) > 1500) clockOffset = offset;
  }

  /* GET (or send) JSON on the public API, the same one integrators use; 401 leads to the login page. */
  async function api(path, params, init) {
    const response = await fetch(url(path, params), {
      credentials: "same-origin", headers: { Accept: "application/json" }, ...(init || {}),
    });
    readServerClock(response);
    if (response.status === 401) { toLogin(); throw new ApiError(401, "login required"); }
    if (!response.ok) {
      let body = {};
      try { body = (await response.json()) || {}; } catch (_) { /* not JSON */ }
      const detail = body.detail || response.statusText;
      const params = body.params && typeof body.params === "object" ? body.params : {};
      throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail),
        typeof body.code === "string" ? body.code : null, params);
    }
    return response.status === 204 ? null : response.json();
  }

  const numberFormat = new Intl.NumberFormat(locale);
  const pctFormat = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
  const pointsFormat = new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1,
    signDisplay: "exceptZero" });
  /* Times are the collectivité's (the server's ``timezone``), never the browser's own zone: a kiosk
     or a laptop set to UTC must show the hours the letters and exports show. A collection day
     ("2026-10-25") is a calendar date with no zone: it is read and formatted as UTC midnight. */
  const timeZone = config.timeZone || undefined;
  const dateFormat = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" });
  const momentDateFormat = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone });
  const dateTimeFormat = new Intl.DateTimeFormat(locale, { dateStyle: "short", timeStyle: "short", timeZone });
  const isDay = (d) => typeof d === "string" && /^\d{4}-\d{2}-\d{2}$/.test(d);
  /* French writes the first of a month « 1er » (« 1er mars 2026 »), Intl « 1 mars 2026 »; English as is. */
  const firstOf = (format, moment) => config.lang === "en" ? format.format(moment) : format.formatToParts(moment)
    .map((p) => (p.type === "day" && Number(p.value) === 1 ? "1er" : p.value)).join("");
  const fmt = {
    // Whole percents written by each language's rule: "5 – 10 %" in French, "5–10%" in English.
    band: (low, high) => t("common.pct_range", { low, high }),
    num: (n) => (n === null || n === undefined ? "–" : numberFormat.format(n)),
    pct: (r) => (r === null || r === undefined ? "–" : pctFormat.format(r)),
    points: (delta) => pointsFormat.format(delta * 100), // a change of rate, in percentage points
    date: (d) => (!d ? "–" : isDay(d) ? firstOf(dateFormat, new Date(`${d}T00:00:00Z`)) : firstOf(momentDateFormat, new Date(d))),
    dateTime: (d) => (d ? dateTimeFormat.format(new Date(d)) : "–"),
    ago(d) {
      if (!d) return t("common.never");
      const s = Math.max(0, Math.round((serverNow() - new Date(d).getTime()) / 1000));
      if (s < 90) return t("time.s_ago", { n: s });
      if (s < 5400) return t("time.min_ago", { n: Math.round(s / 60) });
      if (s < 129600) return t("time.h_ago", { n: Math.round(s / 3600) });
      return t("time.d_ago", { n: Math.round(s / 86400) });
    },
  };

  /* Contamination classes, blue (good) to dark red (bad); grey for streets with too few lifts.
     Colour is never the only signal: each class has its own line pattern and width (map, legend,
     side list), and its text. Every colour has at least 4:1 contrast on the map background and on
     white (WCAG 1.4.11 asks 3:1), and blue/ochre/red stay apart for red-green colour blindness;
     tests/dashboard/test_accessibility.py checks both. Labels in the page's language's typography. */
  const band = fmt.band;
  const CLASSES = [
    { max: 0.05, color: "#2166ac", dash: null, weight: 3, label: t("common.pct_below", { n: 5 }) },
    { max: 0.10, color: "#00798c", dash: "1 6", weight: 3.5, label: band(5, 10) },  // dotted
    { max: 0.20, color: "#a15c00", dash: "9 6", weight: 4, label: band(10, 20) },  // dashed
    { max: 0.30, color: "#c9301c", dash: "16 5 2 5", weight: 5, label: band(20, 30) },  // dash-dot
    { max: Infinity, color: "#6d0a23", dash: null, weight: 7, label: t("common.pct_at_least", { n: 30 }) },  // thick
  ];
  const GREY = "#737373";
  const TOO_FEW = { color: GREY, dash: null, weight: 1.5, label: "" };  // thin: the network as context
  function rateClass(rate, judged) {
    if (!judged || rate === null || rate === undefined) return TOO_FEW;
    return CLASSES.find((c) => rate < c.max);
  }
  const rateColor = (rate, judged) => rateClass(rate, judged).color;
  /* A legend swatch: a short line drawn with the class's colour, pattern and width (decorative). */
  function swatch(cls) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    for (const [k, v] of Object.entries({ class: "swatch", width: 34, height: 12, viewBox: "0 0 34 12",
      "aria-hidden": "true", focusable: "false" })) svg.setAttribute(k, v);
    const line = document.createElementNS(ns, "line");
    for (const [k, v] of Object.entries({ x1: 3, y1: 6, x2: 31, y2: 6, stroke: cls.color,
      "stroke-width": Math.min(cls.weight, 7), "stroke-linecap": "round" })) line.setAttribute(k, v);
    if (cls.dash) line.setAttribute("stroke-dasharray", cls.dash);
    svg.append(line);
    return svg;
  }

  /* Filters live in the URL query so a view can be bookmarked, shared and reloaded. */
  /* Days are local collection days of the configured zone: "today" is the collectivité's today. */
  const dayFormat = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", timeZone });
  const isoDay = (moment) => dayFormat.format(moment);
  const addDays = (day, n) => new Date(Date.parse(`${day}T00:00:00Z`) + n * 86400000).toISOString().slice(0, 10);
  const today = () => isoDay(new Date(serverNow()));
  function filterValues(form) {
    const data = Object.fromEntries(new FormData(form).entries());
    if (data.period === "custom") {
      // Read from the fields themselves: on the change to "custom" they are still disabled, absent
      // from FormData, and the dates of the period shown would be emptied instead of kept to edit.
      data.since = form.elements.since.value;
      data.until = form.elements.until.value;
    } else {
      data.until = today();
      data.since = addDays(data.until, -(Number(data.period) - 1));
    }
    return data;
  }

  /* The days the API accepts (server/web/bounds.py, sent with the settings). A year typed with a
     digit missing (0202) or a wrong one (3026) came back as the API's 422, raw English JSON under
     the map: said beside the dates instead, the wrong field marked, and nothing asked. */
  const [firstDay, lastDay] = config.days;
  const inRange = (day) => !day || (/^\d{4}-\d{2}-\d{2}$/.test(day) && day >= firstDay && day <= lastDay);

  /* A start after the end: the API answers 422 in English ("until … is before since …"), which the
     page would show inside its French error box. Said beside the dates in the reader's language
     instead, and no request is sent. The same day for both is a one-day period, not a mistake.
     A date out of range is said first: its order means nothing. */
  function datesInOrder(form, values, messageId = "f-dates-error") {
    const chosen = values.period === undefined || values.period === "custom";
    const outside = chosen ? ["since", "until"].filter((name) => !inRange(values[name])) : [];
    const wrong = chosen && !outside.length && Boolean(values.since && values.until) && values.since > values.until;
    const message = document.getElementById(messageId);
    if (message) message.textContent = outside.length ? t("filters.dates_range") : wrong ? t("filters.dates_order") : "";
    const invalid = outside.length ? outside : wrong ? ["since", "until"] : [];
    for (const name of ["since", "until"]) {
      if (invalid.includes(name)) form.elements[name].setAttribute("aria-invalid", "true");
      else form.elements[name].removeAttribute("aria-invalid");
    }
    return !invalid.length;
  }

  /* Returns the filters to load first, or null when the link's dates are out of order (the form says
     why; the page waits for a correction). onChange only ever gets dates in order. */
  function setupFilters(form, onChange) {
    const query = new URLSearchParams(location.search);
    for (const element of form.elements) {
      if (element.name && query.has(element.name)) element.value = query.get(element.name);
    }
    // No period, or one the menu does not offer (a truncated or hand-edited link): the default one;
    // an empty period would count no day at all.
    if (!query.has("period") || !form.elements.period.value) form.elements.period.value = config.defaultPeriod || "90";
    const syncDates = () => {
      const values = filterValues(form);
      const custom = form.elements.period.value === "custom";
      for (const name of ["since", "until"]) {
        form.elements[name].value = values[name] || "";
        form.elements[name].disabled = !custom;
      }
    };
    syncDates();
    form.addEventListener("change", () => {
      syncDates();
      const values = filterValues(form);
      // Out of order: the URL and the page keep the last selection shown, under the message.
      if (!datesInOrder(form, values)) return;
      const keep = { ...values };
      if (values.period !== "custom") { delete keep.since; delete keep.until; }
      history.replaceState(null, "", url(location.pathname, keep));
      onChange(values);
    });
    form.addEventListener("submit", (event) => event.preventDefault());
    const first = filterValues(form);
    return datesInOrder(form, first) ? first : null;
  }

  /* Filter changes overlap when a user changes stream, commune or period quickly: answers can come
     back out of order, and an older, slower one must not be drawn over the newest (the page would
     show another selection than its filters and URL). Each load takes a ticket; stale ones drop out. */
  function newestOnly() {
    let last = 0;
    return () => {
      const ticket = ++last;
      return () => ticket === last;
    };
  }

  function fillCommunes(select, communes) {
    const current = new URLSearchParams(location.search).get("commune") || select.value;
    const known = new Set([...select.options].map((o) => o.value));
    for (const name of [...communes].sort((a, b) => a.localeCompare(b, locale))) {
      if (!known.has(name)) select.add(new Option(name, name));
    }
    select.value = current || "";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function showError(target, error) {
    target.textContent = `${t("common.error")} (${error.message}).`;
    target.classList.add("error");
  }

  async function whoami() {
    const slot = document.getElementById("whoami");
    if (!slot) return null;
    const me = await api("/api/me");
    // A mairie's account says which communes it sees (server.web.commune_scope).
    const scope = me.communes ? `, ${t("scope.whoami", { communes: me.communes.join(", ") })}` : "";
    slot.textContent = `${me.name} (${label("role", me.role)}${scope})`;
    document.body.dataset.role = me.role;
    return me;
  }

  function setupLogout() {
    const button = document.getElementById("logout");
    if (!button) return;
    button.addEventListener("click", async () => {
      try { await fetch("/api/logout", { method: "POST", credentials: "same-origin" }); } finally {
        location.assign("/login");
      }
    });
  }

  /* An admin's « Administration » group (base.html): a disclosure, as the APG's navigation example.
     It closes on Escape (the focus back on its button when it was inside), on a click elsewhere and
     when the focus leaves it (Tab past its last link): an open list would cover the page. */
  function setupNavGroup() {
    const toggle = document.querySelector(".nav-toggle");
    const list = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
    if (!list) return;
    const group = toggle.closest(".nav-group");
    const show = (open) => {
      toggle.setAttribute("aria-expanded", String(open));
      list.hidden = !open;
    };
    toggle.addEventListener("click", () => show(list.hidden));
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || list.hidden) return;
      const inside = group.contains(document.activeElement);
      show(false);
      if (inside) toggle.focus();
    });
    document.addEventListener("click", (event) => { if (!group.contains(event.target)) show(false); });
    group.addEventListener("focusout", (event) => {
      if (event.relatedTarget && !group.contains(event.relatedTarget)) show(false);
    });
  }

  /* The filters change the URL without a reload: the language link takes the address of the moment,
     so that the other language opens the same view (the server only knew the address at load). */
  const langSwitch = document.querySelector(".lang-switch");
  langSwitch?.addEventListener("click", () => {
    langSwitch.href = url(langSwitch.pathname, { next: location.pathname + location.search });
  });

  setupLogout();
  setupNavGroup();
  const me = document.getElementById("whoami") ? whoami().catch(() => null) : Promise.resolve(null);
  return { config, t, label, api, url, fmt, today, serverNow, addDays, CLASSES, GREY, TOO_FEW, rateClass, rateColor, swatch,
    setupFilters, datesInOrder, inRange, newestOnly, fillCommunes, el,
           showError, me, locale, ApiError, agree, minLifts };
})();

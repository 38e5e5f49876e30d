/* Journal d'audit (admins): GET /api/audit, newest first, filtered by action, actor, target and local
   days, a page at a time ("Entrées plus anciennes": before_id). Actors, targets and details are
   written by users and trucks (names, ids, reasons): every one goes into the page as text, never as
   markup. The filters live in the URL: the fleet page links a truck's configuration history here.
   An action reads as its label (audit.action.<code>, for an admin or a DPO), its code beside it: the
   code is what the filter sends, the exports and the API use; one without a label shows as is. */
"use strict";

(() => {
  const { config, t, api, url, el, showError, locale, newestOnly, label, fmt } = Trivue;
  const PAGE = 50;
  const FIELDS = ["action", "actor", "target", "since", "until"];
  const form = document.getElementById("journal-filters");
  const status = document.getElementById("journal-status");
  const body = document.querySelector("#journal tbody");
  const older = document.getElementById("journal-older");
  const choice = form.elements.action;
  const PREFIX = "audit.action.";
  // To the second, in the collectivité's zone (the server's timezone, as every page shows times):
  // an investigation lines entries up with a login or an export.
  const when = new Intl.DateTimeFormat(locale, { dateStyle: "short", timeStyle: "medium", timeZone: config.timeZone });
  const fresh = newestOnly();
  let shown = 0;
  let lastId = null;
  let applied = {};  // the filters of the list on screen: older entries continue that list, whatever was typed since

  const filters = () => Object.fromEntries(FIELDS.map((name) => [name, form.elements[name].value.trim()]));

  const labelled = (code) => Object.prototype.hasOwnProperty.call(config.t, PREFIX + code);

  function actionCell(code) {
    if (!labelled(code)) return el("td", { class: "action" }, el("code", { text: code }));
    return el("td", { class: "action" }, el("span", { class: "action-label", text: t(PREFIX + code) }), " ",
      el("code", { text: code }));
  }

  /* A detail in the page's language: the API reads a known form into a code and values
     (server/web/audit_details.py), worded here by audit.detail.<code>; the values that are words
     (a role, a channel, a filter's fields, a day) in the page's words too. A detail of no known form
     shows as stored, English: said so (lang) for a screen reader on the French page. The stored
     detail stays on the cell (data-detail). */
  const known = (key) => Object.prototype.hasOwnProperty.call(config.t, key);
  const DAY = /^\d{4}-\d{2}-\d{2}$/;
  const MOMENT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
  function value(text) {
    if (DAY.test(text)) return fmt.date(text);
    if (MOMENT.test(text)) return fmt.dateTime(text);
    return label("audit.value", text);
  }
  // filter_words' "street_id=343, day_since=2026-11-06" (or "no filter"): a value may hold ", ".
  function filterWords(text) {
    if (text === "no filter") return t("audit.no_filter");
    return text.split(/, (?=\w+=)/).map((pair) => {
      const [, name, raw] = /^(\w+)=(.*)$/s.exec(pair) || [];
      return name ? `${label("audit.field", name)} = ${value(raw)}` : pair;
    }).join(", ");
  }
  const yesNo = (v) => label("audit.value", v);
  // A rollout's sentence writes its trucks as a Python list, "['benne-01', 'benne-02']" (or "[]"),
  // and its canaries' lifts as a dict, "{'benne-01': 52}".
  const trucks = (v) => [...v.matchAll(/'([^']*)'/g)].map((m) => m[1]).join(", ") || t("audit.no_truck");
  const counts = (v) => [...v.matchAll(/'([^']*)': (\d+)/g)]
    .map(([, truck, n]) => t("audit.truck_count", { truck, n: fmt.num(Number(n)) })).join(", ");
  // A dead-letter replay's filters, "reason=unknown_stream since=2026-11-01T00:00:00Z".
  const chosen = (v) => v.split(/ (?=\w+=)/).map((pair) => {
    const [, name, raw] = /^(\w+)=(.*)$/s.exec(pair) || [];
    if (!name) return pair;
    return `${label("audit.field", name)} = ${name === "reason" ? label("dead.reason", raw) : value(raw)}`;
  }).join(", ");
  // A truck's config change (server/fleet/config_change.py): 'stream: null -> "glass", conf: 0.4 -> 0.5',
  // JSON values, null for a setting not set.
  function setting(name, raw) {
    if (raw === "null") return t("audit.setting_unset");
    let v;
    try { v = JSON.parse(raw); } catch (_) { return raw; }
    if (typeof v === "number") return fmt.num(v);
    return name === "stream" ? label("stream", v) : String(v);
  }
  const changes = (v) => v.split(/, (?=(?:stream|conf|min_track_frames|model): )/).map((change) => {
    const [, name, before, after] = /^(\w+): (.+?) -> (.+)$/s.exec(change) || [];
    return name ? t("audit.config_change", { setting: label("audit.setting", name), before: setting(name, before),
      after: setting(name, after) }) : change;
  }).join(t("audit.config_separator"));
  const WORDS = { role: (v) => label("role", v), before: (v) => label("role", v), channel: (v) => label("audit.channel", v),
    contact: yesNo, replace: yesNo, was: yesNo, since: fmt.date, until: fmt.date, filter: filterWords,
    what: (v) => label("ann.action", v), day: fmt.date, changes, counts, chosen,
    canary: trucks, rest: trucks, offline: trucks, unknown: trucks,
    // user.communes' "all -> 45234,45284": "all" is no commune code
    from: value, to: value,
    // labels.undo's ISO moment; an opposition's "2026-11-20 08:30", UTC: both in the collectivité's time
    at: (v) => fmt.dateTime(/^\S+ \d{2}:\d{2}$/.test(v) ? `${v.replace(" ", "T")}:00Z` : v) };
  // A person's own words (a note, an opt-out's reason) or an address: not English, never marked so.
  const TYPED = new Set(["reminders.household.opt_out", "login.failed"]);
  function detailCell(entry) {
    const key = `audit.detail.${entry.detail_code}`;
    if (!entry.detail) return el("td", { text: "" });
    if (!entry.detail_code || !known(key)) {
      const english = config.lang !== "en" && !TYPED.has(entry.action);
      return el("td", { text: entry.detail, lang: english ? "en" : null, "data-detail": entry.detail });
    }
    const params = Object.fromEntries(Object.entries(entry.detail_params || {})
      .map(([name, v]) => [name, WORDS[name] ? WORDS[name](v) : v]));
    return el("td", { text: t(key, params), "data-detail": entry.detail });
  }

  function row(entry) {
    const at = el("time", { datetime: entry.at, text: when.format(new Date(entry.at)) });
    return el("tr", { "data-id": String(entry.id) },
      el("td", { class: "when" }, at),
      el("td", { text: entry.actor }),
      actionCell(entry.action),
      el("td", { text: entry.target ?? "–" }),
      detailCell(entry));
  }

  // Every labelled action, by label in the reader's alphabet ("Étiquetage" beside "Export").
  const codes = Object.keys(config.t).filter((key) => key.startsWith(PREFIX)).map((key) => key.slice(PREFIX.length));
  codes.sort((a, b) => t(PREFIX + a).localeCompare(t(PREFIX + b), locale));
  choice.append(...codes.map((code) => el("option", { value: code, text: t(PREFIX + code) })));

  // A code the list lacks (an old database's entries, a link's or an address typed by hand) is
  // offered as it is, under "Autres codes": the filter still sends exactly what was asked.
  function offer(code) {
    if (!code || [...choice.options].some((o) => o.value === code)) return;
    let other = document.getElementById("j-action-other");
    if (!other) choice.append(other = el("optgroup", { id: "j-action-other", label: t("journal.action_other") }));
    other.append(el("option", { value: code, text: code }));
  }

  async function load(append) {
    const current = fresh();
    const values = append ? applied : filters();
    older.disabled = true;
    try {
      const page = await api("/api/audit", { ...values, limit: PAGE, before_id: append ? lastId : null });
      if (!current()) return;
      const items = page.items;
      if (!append) { body.replaceChildren(); shown = 0; applied = values; }
      if (items.length) body.append(...items.map(row));
      else if (!shown) body.append(el("tr", {}, el("td", { colspan: "5", text: t("journal.none") })));
      shown += items.length;
      lastId = items.length ? items[items.length - 1].id : lastId;
      for (const item of items) offer(item.action);
      status.classList.remove("error");
      const more = items.length === PAGE;  // a full page: there may be older ones (one more call says)
      status.textContent = shown ? t("journal.count", { count: Trivue.fmt.num(shown) }) + (more ? "" : ` ${t("journal.end")}`)
        : t("journal.none");
      older.hidden = !more;
      document.body.dataset.ready = "true";
    } catch (error) {
      if (!current()) return;
      showError(status, error);
      document.body.dataset.ready = "error";
    } finally {
      older.disabled = false;
    }
  }

  const query = new URLSearchParams(location.search);
  offer(query.get("action")?.trim());
  for (const name of FIELDS) if (query.has(name)) form.elements[name].value = query.get(name).trim();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = filters();
    if (!Trivue.datesInOrder(form, values, "j-dates-error")) return;
    history.replaceState(null, "", url(location.pathname, values));
    load(false);
  });
  older.addEventListener("click", () => load(true));

  if (Trivue.datesInOrder(form, filters(), "j-dates-error")) load(false);
  else { status.textContent = ""; document.body.dataset.ready = "error"; }
})();

/* Journal d'audit (admins): GET /api/audit, newest first, filtered by action, actor, target and local
   days, a page at a time ("Entrées plus anciennes": before_id). Actors, targets and details are
   written by users and trucks (names, ids, reasons): every one goes into the page as text, never as
   markup. The filters live in the URL: the fleet page links a truck's configuration history here.
   An action reads as its label (audit.action.<code>, for an admin or a DPO), its code beside it: the
   code is what the filter sends, the exports and the API use; one without a label shows as is. */
"use strict";

(() => {
  const { config, t, api, url, el, showError, locale, newestOnly } = Trivue;
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

  function row(entry) {
    const at = el("time", { datetime: entry.at, text: when.format(new Date(entry.at)) });
    return el("tr", { "data-id": String(entry.id) },
      el("td", { class: "when" }, at),
      el("td", { text: entry.actor }),
      actionCell(entry.action),
      el("td", { text: entry.target ?? "–" }),
      el("td", { text: entry.detail ?? "" }));
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

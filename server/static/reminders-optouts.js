/* Rappels page, households' rights: lifting an opposition (RGPD art. 21) from the key field or from the
   list of recorded oppositions, each after a confirmation. The list names households: it exists only
   with the household level on, and is read when the manager opens it (each read is in the audit log),
   not at every page load. Reminders resume from the next campaign plan; the server says so. */
"use strict";

(() => {
  const { t, tn, api, el, fmt } = Trivue;
  const $ = (id) => document.getElementById(id);
  if (!$("opt-in")) return; // viewers see the notice only
  const base = "/api/reminders/households";
  const list = $("optouts"); // absent with the household level off

  async function loadList() {
    if (!list || !list.open) return;
    const status = $("optouts-status"), table = $("optouts-table");
    status.classList.remove("error");
    try {
      const rows = await api(`${base}/opt-outs`);
      table.tBodies[0].replaceChildren(...rows.map((row) => el("tr", {},
        el("td", {}, el("code", { text: row.key })), // textContent: a key is text typed by a manager
        el("td", { text: fmt.dateTime(row.at) }),
        el("td", { text: row.by }),
        el("td", { text: row.note || "–" }),
        el("td", {}, el("button", { type: "button", class: "button", "data-key": row.key,
          "aria-label": t("rem.opt_in_row", { key: row.key }), text: t("rem.opt_in") })))));
      table.hidden = !rows.length;
      status.textContent = rows.length ? tn("rem.optouts_count", { n: rows.length }) : t("rem.optouts_none");
    } catch (error) { Trivue.showError(status, error); }
  }

  async function lift(key) {
    const status = $("rights-status");
    status.classList.remove("error");
    if (!window.confirm(t("rem.opt_in_confirm", { key }))) return;
    try {
      const done = await api(`${base}/${encodeURIComponent(key)}/opt-in`, {}, { method: "POST",
        body: JSON.stringify({ note: $("rights-note").value.trim() || null }),
        headers: { "Content-Type": "application/json", Accept: "application/json" } });
      status.textContent = t("rem.opted_in", { key: done.key }); // the key as stored (address:03 is address:3)
      await loadList();
    } catch (error) { Trivue.showError(status, error); } // 404: no opposition under this key, said in French
  }

  $("opt-in").addEventListener("click", () => {
    const key = $("rights-key").value.trim();
    if (!$("rights-key").checkValidity() || !key) { $("rights-key").reportValidity(); return; }
    lift(key);
  });
  if (list) {
    list.addEventListener("toggle", loadList);
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-key]");
      if (button) lift(button.dataset.key);
    });
  }
  document.addEventListener("trivue:opt-outs-changed", loadList); // an opposition recorded (reminders.js)
})();

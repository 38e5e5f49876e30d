/* Reminders review page: plan, create, review with photos, send approved items, show the effect. */
"use strict";

(() => {
  const { t, tn, api, el, fmt, config } = Trivue;
  // A validation error arrives as a JSON list of {loc, msg}: a manager reads the messages, not the JSON.
  const showError = (target, error) => {
    let message = error.message;
    try {
      const items = JSON.parse(message);
      if (Array.isArray(items)) message = items.map((i) => `${(i.loc || []).slice(1).join(".") || t("rem.request")}${t("rem.colon")}${i.msg}`).join(t("rem.semicolon"));
    } catch (_) { /* already a sentence */ }
    Trivue.showError(target, new Error(message));
  };
  const $ = (id) => document.getElementById(id);
  if (!$("plan-form")) return; // viewers see the notice only
  const yesterday = Trivue.addDays(Trivue.today(), -1);  // the collectivité's yesterday
  $("plan-until").value = yesterday;
  $("plan-since").value = Trivue.addDays(yesterday, -29);
  const streetId = config.streetId;
  if (streetId) {
    $("plan-street").hidden = false;
    // textContent: a street's name comes from OpenStreetMap and is text, never markup.
    $("plan-street").textContent = config.street
      ? t("rem.street_only", { name: config.street.name, commune: config.street.commune })
      : t("rem.street_only_id", { id: streetId }); // a street no longer in the database
  }
  let printed = { letters: 0, fresh: 0 }, printAsked = 0; // the print file's counts as shown (printLetters)
  let approvedChannels = {}; // the shown campaign's approved messages per channel, for the send confirmation

  function planParams() {
    return { since: $("plan-since").value, until: $("plan-until").value };
  }

  function simulateParams() { // one street's plan: its own counts, not the city's
    return streetId ? { ...planParams(), street_id: streetId } : planParams();
  }

  /* A year typed wrong (0202) or a start after the end: the API's 422 came back in English, field
     names and all. Said here in the reader's language, the field marked, and nothing sent. */
  function datesOk() {
    const ok = Trivue.datesInOrder($("plan-form"), planParams(), "plan-status");
    if (!ok) $("plan-status").classList.add("error");
    return ok;
  }

  async function simulate() {
    const status = $("plan-status");
    status.classList.remove("error");
    if (!datesOk()) return;
    try {
      const plan = await api("/api/reminders/plan", simulateParams());
      const targets = plan.targets.filter((x) => !streetId || x.street_id === Number(streetId));
      // The lifts without a sure household: the city's (401) said apart from the targeted streets' (206).
      const unsure = streetId ? tn("rem.plan_unsure_street", { all: plan.street_only_lifts })
        : tn("rem.plan_unsure", { targeted: plan.street_only_targeted, streets: plan.targeted_streets, all: plan.street_only_lifts });
      status.textContent = (plan.quiet ? t("rem.quiet", { reason: plan.quiet }) + " " : "") + tn("rem.plan_summary", {
        targets: targets.length, skipped: plan.skipped.length }) + " " + unsure;
      const body = $("plan-table").querySelector("tbody");
      body.replaceChildren(...targets.map((x) => el("tr", {},
        el("td", {}, el("strong", { text: x.label }), el("br"),
          el("span", { class: "muted small", text: t("rem.kind." + x.kind) + (x.level ? ` · ${x.action}` : "") })),
        el("td", { text: x.reason }))),
      ...plan.skipped.map((x) => el("tr", { class: "muted" }, el("td", { text: x.label }),
        el("td", { text: `${t("rem.skipped")}${t("rem.colon")}${x.reason}` }))));
      $("plan-table").hidden = false;
    } catch (error) { showError(status, error); }
  }

  async function create() {
    const status = $("plan-status");
    status.classList.remove("error");
    if (!datesOk()) return;
    try {
      const body = { name: $("plan-name").value, ...planParams() };
      if (streetId) body.street_id = Number(streetId);
      const campaign = await api("/api/reminders/campaigns", {}, {
        method: "POST", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", Accept: "application/json" } });
      await loadCampaigns(campaign.id);
    } catch (error) { showError(status, error); }
  }

  /* The campaigns come a page at a time, newest first (every campaign ever made was one <select>
     of hundreds, each one's counts recomputed): « Campagnes plus anciennes » adds the next page. */
  let olderCampaigns = null; // the next page's cursor, null once every campaign is listed

  function showCampaigns(page, append) {
    const select = $("campaign-select");
    const options = page.items.map((c) => new Option(`#${c.id} — ${c.name}`, c.id));
    if (append) select.append(...options); else select.replaceChildren(...options);
    olderCampaigns = page.next_cursor;
    $("campaign-more").hidden = !olderCampaigns;
    select.disabled = !select.options.length;
  }

  async function loadCampaigns(selected) {
    const page = await api("/api/reminders/campaigns");
    showCampaigns(page, false);
    if (!page.items.length) { $("campaign-status").textContent = t("rem.no_campaign"); return; }
    $("campaign-select").value = selected || page.items[0].id;
    await loadCampaign();
  }

  async function moreCampaigns() {
    try {
      showCampaigns(await api("/api/reminders/campaigns", { cursor: olderCampaigns }), true); // the choice stays
      $("campaign-select").focus();
    } catch (error) { showError($("campaign-status"), error); }
  }

  /* What needs a campaign works only once one is chosen: before, the buttons are disabled, the links
     have no href (a "#" led nowhere) and say they are disabled, and the effect panel says when an
     effect can be read instead of showing an empty chart box and a dead export. */
  function campaignChosen(id) {
    ["send", "retry-all", "status-filter"].forEach((name) => { $(name).disabled = !id; });
    [["route-sheet", "route-sheet.pdf"], ["effect-csv", "effect?format=csv"]].forEach(([name, path]) => {
      const link = $(name);
      if (id) link.href = `/api/reminders/campaigns/${id}/${path}`;
      else link.removeAttribute("href");
      ["role", "aria-disabled"].forEach((a) => (id ? link.removeAttribute(a) : link.setAttribute(a, a === "role" ? "link" : "true")));
    });
    $("effect-none").hidden = Boolean(id);
    $("effect-export").hidden = !id;
  }

  function photoList(item) {
    if (!item.photos.length) {
      return item.kind === "thanks" ? null : el("p", { class: "muted small", text: t("rem.photos_none") });
    }
    return el("div", { class: "rem-photos" }, ...item.photos.map((src, n) =>
      el("a", { href: src, target: "_blank", rel: "noopener" },
        el("img", { src, alt: `${item.label} — photo ${n + 1}`, loading: "lazy" }))));
  }

  function channelLine(item) {
    if (item.no_contact) return el("p", { class: "rem-warning small", role: "note", text: t("rem.no_contact") });
    if (!item.planned_channel) return null;
    return el("p", { class: "small", text: t("rem.planned", { channel: t("rem.channel." + item.planned_channel) }) });
  }

  function reviewForm(item, reasons) {
    if (!["pending", "approved"].includes(item.status)) {
      const who = item.reviewed_by ? ` — ${item.reviewed_by}` : "";
      // The reason's own label has brackets (« Fausse détection (photo sans erreur) »): a dash, not more
      // brackets; and the reviewer's note after it, which the page never showed.
      const note = item.review_note ? `${t("rem.colon")}${item.review_note}` : "";
      const why = item.review_reason ? ` — ${t("rem.reason." + item.review_reason)}${note}` : "";
      const channel = item.channel && item.status === "sent" ? ` — ${t("rem.channel." + item.channel)}` : "";
      const line = el("p", { class: "small muted", text: `${t("rem.status." + item.status)}${channel}${why}${who} ` });
      if (item.file) line.append(el("a", { href: item.file, target: "_blank", rel: "noopener", text: item.send_detail }));
      // A sent e-mail's detail is its Message-ID, the mail servers' business, not the reader's.
      else if (item.send_detail && !(item.status === "sent" && item.channel === "email")) line.append(item.send_detail);
      if (item.next_attempt_at) line.append(` (${t("rem.retry_at", { at: fmt.dateTime(item.next_attempt_at) })})`);
      if (["failed", "retry"].includes(item.status)) {
        return el("div", { class: "rem-review" }, line,
          el("button", { type: "button", class: "button", "data-retry": item.id, text: t("rem.retry") }));
      }
      return line;
    }
    const reason = el("select", { id: `reason-${item.id}` }, new Option(t("rem.choose_reason"), ""),
      ...reasons.map((r) => new Option(t(`rem.reason.${r}`), r)));
    const note = el("input", { id: `note-${item.id}`, maxlength: "2000" });
    const approve = el("button", { type: "button", class: "button primary", "data-approve": item.id, text: t("rem.approve") });
    const reject = el("button", { type: "button", class: "button", "data-reject": item.id, text: t("rem.reject") });
    approve.disabled = item.status === "approved";
    return el("div", { class: "rem-review" },
      approve, el("label", {}, t("rem.reject_reason"), reason), el("label", {}, t("rem.note"), note), reject);
  }

  function previews(item) {
    if (forgotten(item)) return null; // erased or expired: no household left to write to
    if (["rejected", "skipped"].includes(item.status)) return null; // refused or set aside: no message will go
    const links = [["letter", "rem.preview"]];
    if (item.kind === "household") links.push(["email", "rem.preview_email"], ["sms", "rem.preview_sms"]);
    // Every card has the same three words: the name says whose message, its visible words first (RGAA 6.1).
    const named = (key) => t(item.level ? "rem.preview_name_level" : "rem.preview_name",
      { preview: t(key), item: itemLabel(item), n: item.level });
    return el("p", { class: "small" }, ...links.map(([channel, key]) => el("a", {
      href: `/api/reminders/items/${item.id}/preview?channel=${channel}`, target: "_blank", rel: "noopener",
      text: t(key), "aria-label": named(key), style: "margin-right:1rem" })));
  }

  // An erased or expired household's item keeps only its pseudonymous key (erased:17): said in words.
  const forgotten = (item) => /^(erased|expired):(\d+)$/.exec(item.key || "");
  function itemLabel(item) {
    const gone = forgotten(item);
    if (gone) return t(`rem.${gone[1]}_item`, { id: gone[2] });
    // A bin's label is its tag alone: its street says where it stands, as the plan's table does.
    return item.key && item.key.startsWith("bin:") && item.street ? `${item.label} (${item.street})` : item.label;
  }

  function itemCard(item, reasons) {
    const level = item.level ? ` · ${t("rem.level", { n: item.level })} (${item.action})` : "";
    const cats = item.categories.map((c) => `${c.label} (${c.lifts})`).join(", ");
    return el("li", { class: "rem-item", id: `item-${item.id}`, "data-status": item.status },
      el("header", {}, el("h3", { text: itemLabel(item) }),
        el("span", { class: "rem-badge", text: t("rem.kind." + item.kind) + level }),
        el("span", { class: `rem-badge ${item.status}`, text: t("rem.status." + item.status) })),
      el("p", { class: "rem-why" }, el("strong", { text: `${t("rem.why")}${t("rem.colon")}` }), item.reason),
      cats ? el("p", { class: "small", text: cats }) : null,
      channelLine(item), photoList(item), previews(item), reviewForm(item, reasons));
  }

  async function loadCampaign() {
    const id = $("campaign-select").value;
    campaignChosen(id);
    if (!id) return;
    const status = $("campaign-status");
    status.classList.remove("error");
    try {
      const data = await api(`/api/reminders/campaigns/${id}`, { status: $("status-filter").value });
      status.textContent = `${data.name} — ${fmt.date(data.since)} → ${fmt.date(data.until)} — ` +
        Object.entries(data.counts).map(([k, v]) => `${t("rem.status." + k)} ${v}`).join(", ");
      if (data.hidden_household_items) status.textContent += " — " + tn("rem.hidden_households", { n: data.hidden_household_items });
      approvedChannels = data.approved_channels || {};
      $("queue").replaceChildren(...data.items.map((item) => itemCard(item, data.reject_reasons)));
      printLetters(id);
      await Trivue.reminderEffect(id);
    } catch (error) { showError(status, error); }
  }

  /* The mail room's print file (by commune, postcode, street, number; household level only): every letter,
     or only those never printed (a retry's, contacts imported since: --new-only), with the counts; the
     new ones are counted only once some were printed (a count reads every letter). */
  async function printLetters(id) {
    const box = $("print-letters");
    if (!box) return null;
    const base = `/api/reminders/campaigns/${id}/letters`, asked = ++printAsked;
    try {
      const all = await api(base);
      const fresh = all.already_printed ? await api(base, { only_new: true }) : all;
      if (asked !== printAsked) return null; // a later count (another campaign, an erasure) was asked
      const before = Math.max(0, all.letters - fresh.letters); // printed before, and in the file of all
      const sheets = (run) => ({ n: run.letters, sheets: run.sheets });
      const split = !before ? t("rem.print_none_yet") : !fresh.letters ? t("rem.print_all_done")
        : tn("rem.print_split", { fresh: fresh.letters, printed: before });
      const parts = [tn("rem.print_count", { n: all.letters }), split];
      if (all.left_out.length) parts.push(tn("rem.print_left_out", { n: all.left_out.length }));
      $("print-letters-count").textContent = parts.join(t("rem.semicolon"));
      $("print-new").href = `${base}.pdf?only_new=true`;
      $("print-new").textContent = tn("rem.print_new_n", sheets(fresh));
      $("print-new").hidden = !before || !fresh.letters; // nothing printed yet: the two files are one
      $("print-all").href = `${base}.pdf`;
      $("print-all").textContent = before ? tn("rem.print_again_n", sheets(all)) : tn("rem.print_letters_n", sheets(all));
      $("print-all").classList.toggle("primary", !before || !fresh.letters);
      box.hidden = !all.letters;
      printed = { letters: all.letters, fresh: fresh.letters };
      return printed;
    } catch (error) { box.hidden = true; return null; }
  }

  /* A print file marks its letters printed once its last byte is sent (a broken download marks none):
     the counts, read again until they change, as long as a métropole's file may take (ten minutes),
     less and less often, and no more once another campaign is shown. */
  function afterPrint() {
    const id = $("campaign-select").value;
    const before = printed.fresh;
    let waited = 0;
    const again = async () => {
      if ($("campaign-select").value !== id) return;
      const now = await printLetters(id);
      const wait = Math.min(2000 + waited / 4, 15000);
      if (now && now.fresh && now.fresh === before && waited < 600000) {
        waited += wait;
        setTimeout(again, wait);
      }
    };
    setTimeout(again, 1000);
  }

  async function decide(itemId, approve) {
    if (!approve && !$(`reason-${itemId}`).value) {  // no default reason: a hasty click must not file a false detection
      // the reviewer's omission, said as such (not "could not load the data")
      $("campaign-status").textContent = t("rem.reason_needed");
      $("campaign-status").classList.add("error");
      $(`reason-${itemId}`).focus();
      return;
    }
    const body = approve ? { decision: "approve" } : {
      decision: "reject", reason: $(`reason-${itemId}`).value, note: $(`note-${itemId}`).value || null };
    try {
      await api(`/api/reminders/items/${itemId}/review`, {}, {
        method: "POST", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", Accept: "application/json" } });
      await loadCampaign();
    } catch (error) { showError($("campaign-status"), error); }
  }

  /* « Envoyer maintenant les 12 messages approuvés de cette campagne ? 5 par courriel, 3 par SMS, … »: what
     will go, by which channel, before it goes (the campaign's approved items, whatever the filter shows). */
  function sendQuestion() {
    const order = ["email", "sms", "letter", "print"];
    const total = Object.values(approvedChannels).reduce((a, b) => a + b, 0);
    const parts = order.filter((c) => approvedChannels[c])
      .map((c) => tn("rem.send_by", { n: approvedChannels[c], channel: t("rem.channel." + c) }));
    if (approvedChannels.none) parts.push(tn("rem.send_none", { n: approvedChannels.none }));
    const wait = approvedChannels.sms ? ` ${t("rem.send_sms_hours")}` : ""; // SMS wait for the sending hours
    return tn("rem.send_confirm", { n: total }) + (parts.length ? `${t("rem.colon")}${parts.join(", ")}.` : ".") + wait;
  }

  async function send(retryItem) {
    const id = $("campaign-select").value;
    const retry = retryItem !== undefined;
    if (!id || !window.confirm(retry ? t("rem.retry_confirm") : sendQuestion())) return;
    const sendPath = `/api/reminders/campaigns/${id}/send`;
    const status = $("campaign-status");
    // A request sends for about 20 s and says how many items remain: call again until none do,
    // adding up the counts and showing the progress meanwhile.
    const total = { sent: {}, failed: 0, retrying: 0, skipped: 0, waiting: 0 };
    try {
      status.textContent = t("rem.sending");
      let report = await api(retry ? `/api/reminders/campaigns/${id}/retry` : sendPath,
        retryItem ? { item_id: retryItem } : {}, { method: "POST" });
      for (;;) {
        Object.entries(report.sent).forEach(([k, v]) => { total.sent[k] = (total.sent[k] || 0) + v; });
        total.failed += report.failed.length; total.retrying += report.retrying.length; total.skipped += report.skipped.length;
        total.waiting += (report.waiting || []).length; // SMS held until the sending hours: still approved
        if (!report.remaining || report.deferred) break;
        const done = Object.values(total.sent).reduce((a, b) => a + b, 0) + total.failed + total.retrying + total.skipped;
        status.textContent = tn("rem.sending_progress", { done, remaining: report.remaining });
        report = await api(sendPath, {}, { method: "POST" });
      }
      await loadCampaign();
      const sent = Object.entries(total.sent).map(([k, v]) => `${t("rem.channel." + k)} ${fmt.num(v)}`).join(", ") || "0";
      status.textContent = report.deferred || t("rem.sent_report", {
        sent, failed: total.failed, retrying: total.retrying, skipped: total.skipped })
        + (total.waiting ? " " + tn("rem.sent_waiting", { waiting: total.waiting }) : "");
    } catch (error) { showError(status, error); }
  }

  /* Letters an erasure could not delete and route sheets it could not rewrite (not found, or outside the
     server's folder): each still names the household, so the page says so, with where (the API's
     sentences, in the page's language). */
  function missingLetters(letters, sheets = []) {
    const list = $("rights-missing");
    list.replaceChildren(...[...letters, ...sheets].map((text) => el("li", { text })));
    list.hidden = !letters.length && !sheets.length;
    if (letters.length) $("rights-status").append(" ", tn("rem.letters_missing", { n: letters.length }));
    if (sheets.length) $("rights-status").append(" ", tn("rem.sheets_missing", { n: sheets.length }));
  }

  async function rights(action) {
    const status = $("rights-status");
    status.classList.remove("error");
    missingLetters([]);
    const key = $("rights-key").value.trim();
    if (!$("rights-key").checkValidity() || !key) { $("rights-key").reportValidity(); return; }
    const path = `/api/reminders/households/${encodeURIComponent(key)}`;
    try {
      if (action === "opt-out") {
        const done = await api(`${path}/opt-out`, {}, { method: "POST",
          body: JSON.stringify({ note: $("rights-note").value || null }),
          headers: { "Content-Type": "application/json", Accept: "application/json" } });
        // Recorded all the same, but a key nothing is known of may be a typo: said, in the page's language.
        status.textContent = t(done && done.known === false ? "rem.opted_out_unknown" : "rem.opted_out", { key });
        document.dispatchEvent(new CustomEvent("trivue:opt-outs-changed")); // the open list (reminders-optouts.js)
      } else {
        if (!window.confirm(t("rem.erase_confirm"))) return;
        const note = $("rights-note").value.trim();
        const done = await api(path, note ? { note } : {}, { method: "DELETE" });
        status.textContent = tn("rem.erased", { key, contacts: done.contacts, items: done.items, letters: done.letters,
          dead_letters: done.dead_letters ?? 0, // refused messages naming its bins, payload emptied
          route_sheets: done.route_sheets ?? 0 }); // the ambassadeurs' sheets that listed it as a visit
        missingLetters(done.letters_missing || [], done.route_sheets_missing || []);
      }
      await loadCampaign();
    } catch (error) { showError(status, error); }
  }

  async function importContacts() {
    const status = $("rights-status");
    const file = $("contacts-file").files[0];
    if (!file) return;
    try {
      // The file's own bytes: the server detects its encoding (Windows-1252 from French Excel, UTF-8...).
      const report = await api("/api/reminders/households/import", {}, { method: "POST", body: file,
        headers: { "Content-Type": "text/csv", Accept: "application/json" } });
      const unknown = report.unknown_columns.length ? " " + t("rem.unknown_columns", { columns: report.unknown_columns.join(", ") }) : "";
      // How the file was read: a manager importing French Excel's Windows-1252 ";" file sees it was understood.
      const readAs = " " + t("rem.read_as", { encoding: report.encoding,
        delimiter: report.delimiter === "\t" ? t("rem.tab") : report.delimiter });
      status.textContent = tn("rem.imported", { imported: report.imported, updated: report.updated,
        errors: report.refused, details: report.errors.join(" ; ") }) + unknown + readAs;
    } catch (error) { showError(status, error); }
  }

  ["print-new", "print-all"].forEach((id) => $(id) && $(id).addEventListener("click", afterPrint)); // household level
  $("opt-out").addEventListener("click", () => rights("opt-out"));
  $("erase").addEventListener("click", () => rights("erase"));
  if ($("contacts-import")) $("contacts-import").addEventListener("click", importContacts); // household level only
  $("simulate").addEventListener("click", simulate);
  $("create").addEventListener("click", create);
  $("send").addEventListener("click", () => send());
  $("retry-all").addEventListener("click", () => send(null));
  $("campaign-select").addEventListener("change", loadCampaign);
  $("campaign-more").addEventListener("click", moreCampaigns);
  $("status-filter").addEventListener("change", loadCampaign);
  $("queue").addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.dataset.approve) decide(target.dataset.approve, true);
    if (target.dataset.reject) decide(target.dataset.reject, false);
    if (target.dataset.retry) send(Number(target.dataset.retry));
  });
  loadCampaigns().catch((error) => showError($("campaign-status"), error));
})();

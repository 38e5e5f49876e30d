/* Alertes: dangerous lifts pushed by the server (server-sent events), newest first, no reload. */
"use strict";

(() => {
  const { t, api, fmt, el, label } = Trivue;
  const list = document.getElementById("alerts");
  const empty = document.getElementById("alerts-empty");
  const live = document.getElementById("live");
  const announce = document.getElementById("alert-announce");
  const seen = new Set();

  const items = (alert) => (alert.errors || []).filter((e) => e.severity === "alert")
    .map((e) => `${label("class", e.class)} × ${e.count}`).join(", ");

  /* A lift is sent as it ends and stored within seconds. Stored more than LATE_MS after it began, the
     truck was out of coverage (its outbox kept it): the crew was warned in the cab then, and the office
     must not take a danger of hours ago for a new one. */
  const LATE_MS = 5 * 60 * 1000;
  const delayOf = (alert) => new Date(alert.received_at).getTime() - new Date(alert.started_at).getTime();
  const isLate = (alert) => Boolean(alert.received_at) && delayOf(alert) > LATE_MS;

  function delay(ms) {
    const minutes = Math.round(ms / 60000);
    if (minutes < 90) return t("alerts.delay_min", { n: minutes });
    if (minutes < 36 * 60) return t("alerts.delay_h", { n: Math.round(minutes / 60) });
    return t("alerts.delay_d", { n: Math.round(minutes / 1440) });
  }

  function item(alert) {
    const street = alert.street_id
      ? el("a", { href: `/rues/${alert.street_id}`, text: alert.street_name || `#${alert.street_id}` })
      : el("span", { class: "muted", text: t("alerts.unmatched") });
    const late = isLate(alert) ? [" ", el("span", { class: "badge warn", text: t("alerts.late") }), " ",
      el("span", { class: "small", title: fmt.dateTime(alert.received_at),
        text: t("alerts.late_detail", { delay: delay(delayOf(alert)) }) })] : [];
    return el("li", { class: "alert-item", "data-event": alert.event_id },
      el("p", { class: "alert-what" }, el("span", { class: "badge danger", text: "⚠" }), " ", el("strong", { text: items(alert) }), ...late),
      el("p", {}, street, alert.commune ? ` — ${alert.commune}` : ""),
      el("p", { class: "muted small" }, el("time", { datetime: alert.started_at, text: fmt.dateTime(alert.started_at) }),
        ` · ${t("street.truck")} ${alert.truck_id} · ${label("stream", alert.stream)}`));
  }

  function add(alert, fresh) {
    if (seen.has(alert.event_id)) return;
    seen.add(alert.event_id);
    const node = item(alert);
    if (fresh) {
      node.classList.add("fresh");
      list.prepend(node);
      const what = { items: items(alert), street: alert.street_name || t("alerts.unmatched"), at: fmt.dateTime(alert.started_at) };
      announce.textContent = t(isLate(alert) ? "alerts.new_late" : "alerts.new", what);
    } else {
      list.append(node);
    }
    empty.hidden = true;
  }

  /* Where the page resumes: the cursor of /api/alerts, then each event's id. Both are a settled id
     (nothing below it can still be committed), not the newest alert shown: alerts shown already come
     again and add() drops them. A stream the server refused is opened again from it, never from "now":
     alerts stored meanwhile still come. */
  let lastId = null;
  const RETRY_MS = 5000;

  function connect(after) {
    lastId = after;
    const source = new EventSource(after !== null && after !== undefined ? `/api/alerts/stream?after=${encodeURIComponent(after)}` : "/api/alerts/stream");
    source.addEventListener("open", () => { live.textContent = t("alerts.live"); live.classList.add("on"); });
    source.addEventListener("alert", (event) => {
      lastId = event.lastEventId;
      add(JSON.parse(event.data), true);
    });
    source.addEventListener("error", () => {
      live.textContent = t("alerts.disconnected");
      live.classList.remove("on");
      // EventSource reconnects by itself, sending Last-Event-ID so nothing is missed, unless the
      // server refused it (logged out, a 502 from the proxy while the server restarts, a 503 while
      // the database is away): then find out why. Logged out, api() goes to the login page; any
      // other failure is the outage itself: try again later, for as long as the page is open.
      if (source.readyState === EventSource.CLOSED) retry();
    });
  }

  /* The feed is lift by lift: managers and admins only (docs/privacy.md), and the whole territory's.
     An account lowered to viewer, or limited to some communes (server.web.commune_scope), meanwhile
     gets 403 for good: the page reloads into its notice rather than retry forever. */
  const FEED_ROLES = ["manager", "admin"];

  function retry() {
    api("/api/me").then((me) => {
      if (!FEED_ROLES.includes(me.role) || me.communes) {
        window.location.reload();
        return;
      }
      setTimeout(() => connect(lastId), RETRY_MS);
    }, (error) => {
      if (error.status !== 401) setTimeout(retry, RETRY_MS);
    });
  }

  async function start() {
    try {
      const recent = await api("/api/alerts", { limit: 50 });
      recent.items.forEach((a) => add(a, false));
      empty.hidden = recent.items.length > 0;
      connect(recent.cursor);
      document.body.dataset.ready = "true";
    } catch (error) {
      Trivue.showError(live, error);
    }
  }
  start();
})();

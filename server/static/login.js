/* Login: POST /api/login sets the session cookie; then back to the page that asked for it. */
"use strict";

(() => {
  const { t, config } = Trivue;
  const form = document.getElementById("login-form");
  const message = document.getElementById("login-error");
  const notice = document.getElementById("login-plain-http");
  const submit = form.querySelector("button[type=submit]");
  // The start of the server's refusal (server/web/login.py PLAIN_HTTP_REFUSAL).
  const PLAIN_HTTP_REFUSAL = "session cookie not kept over plain HTTP";

  // Browsers keep a Secure cookie only from a secure context (https://, or localhost): on a pilot
  // reached at http://192.168.1.20:8000/ every login was lost and the user sent back here without a
  // word. Say why and what to do, and keep the password from crossing the network for nothing.
  if (config.secureCookie && !window.isSecureContext) {
    notice.hidden = false;
    submit.disabled = true;
    submit.setAttribute("aria-describedby", "login-plain-http");
  }

  async function refusedOverPlainHttp(response) {
    if (response.status !== 403) return false;
    try {
      const { detail } = await response.json();
      return typeof detail === "string" && detail.startsWith(PLAIN_HTTP_REFUSAL);
    } catch (_) {
      return false;
    }
  }

  function nextPage() {
    const next = new URLSearchParams(location.search).get("next") || "/carte";
    // Only paths of this site: an open redirect would help phishing.
    return next.startsWith("/") && !next.startsWith("//") ? next : "/carte";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.hidden = true;
    const body = { name: form.elements.username.value.trim(), password: form.elements.password.value };
    let response;
    try {
      response = await fetch("/api/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (_) {
      response = null;
    }
    if (response && response.ok) {
      location.assign(nextPage());
      return;
    }
    if (response && await refusedOverPlainHttp(response)) {
      notice.hidden = false;
      message.textContent = t("login.plain_http.title");
    } else if (response && response.status === 429) {
      // The throttle (server/web/throttle.py) says when the lock ends; "the server does not answer"
      // sent users to their administrator for a wait of a few minutes.
      const seconds = Number(response.headers.get("Retry-After")) || 15 * 60;
      message.textContent = t("login.throttled", { minutes: Math.max(1, Math.ceil(seconds / 60)) });
    } else {
      message.textContent = response && [400, 401, 403, 422].includes(response.status)
        ? t("login.failed") : t("login.error");
    }
    message.hidden = false;
    form.elements.password.select();
  });
})();

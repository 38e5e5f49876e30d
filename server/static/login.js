/* Login: POST /api/login sets the session cookie; then back to the page that asked for it. */
"use strict";

(() => {
  const { t } = Trivue;
  const form = document.getElementById("login-form");
  const message = document.getElementById("login-error");

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
    message.textContent = response && [400, 401, 403, 422].includes(response.status)
      ? t("login.failed") : t("login.error");
    message.hidden = false;
    form.elements.password.select();
  });
})();

/* The Rappels page's plurals: a count written with its noun agrees with it in the page's language
   (French: 0 and 1 singular, « 0 levée », « 2 levées »; English: "0 lifts", "1 lift").

   In a message, {name|singular|plural} is the form for the parameter ``name`` (a number), chosen by the
   language's plural rules (Trivue.agree, app.js: every page's Trivue.t does the same); {name} is the
   number itself, formatted for the language here. Trivue.tn(key, params) writes such a
   message; a parameter that is not a number passes as Trivue.t does. Loaded before reminders-effect.js
   and reminders.js. */
"use strict";

(() => {
  const { t, fmt, agree } = Trivue;

  Trivue.tn = (key, params = {}) => {
    const message = agree(t(key), params);  // the forms (app.js), before the numbers are written
    const shown = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === "number" ? fmt.num(v) : v]));
    return Object.entries(shown).reduce((text, [name, value]) => text.split(`{${name}}`).join(value), message);
  };
})();

/* The Rappels page's plurals: a count written with its noun agrees with it in the page's language
   (French: 0 and 1 singular, « 0 levée », « 2 levées »; English: "0 lifts", "1 lift").

   In a message, {name|singular|plural} is the form for the parameter ``name`` (a number), chosen by the
   language's plural rules (Intl.PluralRules: "one" takes the first form, any other category the second);
   {name} is the number itself, formatted for the language. Trivue.tn(key, params) writes such a
   message; a parameter that is not a number passes as Trivue.t does. Loaded before reminders-effect.js
   and reminders.js. */
"use strict";

(() => {
  const { t, fmt, config } = Trivue;
  const rules = new Intl.PluralRules(config.lang === "en" ? "en-GB" : "fr-FR");
  const FORMS = /\{(\w+)\|((?:[^|{}]|\{\w+\})*)\|((?:[^|{}]|\{\w+\})*)\}/g; // a form may hold {n}

  Trivue.tn = (key, params = {}) => {
    const counts = Object.fromEntries(Object.entries(params).filter(([, v]) => typeof v === "number"));
    const message = t(key).replace(FORMS, (whole, name, one, other) =>
      (name in counts ? (rules.select(counts[name]) === "one" ? one : other) : whole));
    const shown = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === "number" ? fmt.num(v) : v]));
    return Object.entries(shown).reduce((text, [name, value]) => text.split(`{${name}}`).join(value), message);
  };
})();

// A workflow's definition editor: the JSON is checked as it is typed (syntax only: the server checks the
// activities when it is saved), and Format lays it out again. Without JavaScript the form works the same.
"use strict";

(() => {
  // Where a JSON.parse error is, as line and column: browsers give a position, or already a line and column.
  function where(source, message) {
    const found = /position (\d+)/.exec(message);
    if (!found || /line \d+/.test(message)) return "";
    const before = source.slice(0, Number(found[1])).split("\n");
    return ` (line ${before.length}, column ${before[before.length - 1].length + 1})`;
  }

  function check(textarea, status) {
    const source = textarea.value;
    if (!source.trim()) {
      status.textContent = 'Empty: write a JSON object such as {"activities": [...]}.';
      status.className = "json-status invalid";
      textarea.setAttribute("aria-invalid", "true");
      return null;
    }
    try {
      const value = JSON.parse(source);
      const activities = value && typeof value === "object" && Array.isArray(value.activities);
      status.textContent = activities
        ? `Valid JSON: ${value.activities.length} activit${value.activities.length === 1 ? "y" : "ies"}.`
        : 'Valid JSON, but a definition is an object with a list of "activities".';
      status.className = activities ? "json-status muted" : "json-status invalid";
      if (activities) textarea.removeAttribute("aria-invalid");
      else textarea.setAttribute("aria-invalid", "true");
      return value;
    } catch (error) {
      status.textContent = `Not valid JSON: ${error.message}${where(source, error.message)}.`;
      status.className = "json-status invalid";
      textarea.setAttribute("aria-invalid", "true");
      return null;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll("form[data-json-form]")) {
      const textarea = form.querySelector("textarea");
      const status = form.querySelector("[data-json-status]");
      if (!textarea || !status) continue;
      let timer = null;
      textarea.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(() => check(textarea, status), 150);
      });
      const format = form.querySelector("[data-json-format]");
      if (format) {
        format.addEventListener("click", () => {
          const value = check(textarea, status);
          if (value !== null) textarea.value = JSON.stringify(value, null, 2);
        });
      }
      if (!textarea.readOnly) check(textarea, status);
    }
  });
})();

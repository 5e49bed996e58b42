// The template editor's preview: the REST API renders the saved draft (or a version) with the sample or a
// seed's data. What it returns is shown as text, and an email's HTML only inside a sandboxed frame.
"use strict";

(() => {
  const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

  function setup(panel) {
    const id = panel.dataset.templateId;
    const $ = (name) => panel.querySelector(`[data-preview-${name}]`);
    const seed = $("seed"), language = $("language"), version = $("version");
    const status = $("status"), output = $("output"), headers = $("headers");
    const frame = $("frame"), text = $("text"), textTitle = $("text-title"), warnings = $("warnings");
    let pending = null;

    function fact(term, value) {
      if (value === null || value === undefined || value === "") return;
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = typeof value === "string" ? value : JSON.stringify(value);
      headers.append(dt, dd);
    }

    function showText(value) {
      text.hidden = textTitle.hidden = !value;
      text.textContent = value || "";
    }

    function show(result) {
      headers.replaceChildren();
      warnings.replaceChildren();
      fact("Data", result.data);
      fact("Language", result.language);
      fact("From", result.from);
      fact("Reply-To", result.replyTo);
      fact("Subject", result.subject);
      if (result.encoding) fact("Encoding", `${result.encoding}, ${result.segments} part(s)`);
      if (result.push) {
        fact("Title", result.push.title);
        fact("Body", result.push.body);
        if (Object.keys(result.push.data || {}).length) fact("Data for the app", result.push.data);
        fact("Badge", result.push.badge);
        fact("Sound", result.push.sound);
      }
      frame.hidden = !result.html;
      // srcdoc is a document of its own; the sandbox gives it no scripts, no forms and no access to this page.
      frame.srcdoc = result.html || "";
      showText(result.push ? "" : result.text);
      for (const warning of result.warnings || []) {
        const item = document.createElement("li");
        item.textContent = `${warning.field}: ${warning.message}`;
        warnings.append(item);
      }
      output.hidden = false;
      status.textContent = (result.warnings || []).length
        ? "Rendered, with warnings: publishing would refuse this draft."
        : "Rendered.";
      status.className = (result.warnings || []).length ? "warning" : "muted";
    }

    function fail(error) {
      const where = [error.field, error.line ? `line ${error.line}` : "", error.expression ? `at ${error.expression}` : ""]
        .filter(Boolean).join(", ");
      status.textContent = `Cannot render: ${error.message || "unknown error"}${where ? ` (${where})` : ""}`;
      status.className = "field-error";
      output.hidden = true;
    }

    async function refresh() {
      const body = {};
      if (seed.value) body.seedId = Number(seed.value);
      if (language.value.trim()) body.language = language.value.trim();
      if (version.value) body.version = Number(version.value);
      if (pending) pending.abort();
      pending = new AbortController();
      status.textContent = "Rendering…";
      status.className = "muted";
      try {
        const response = await fetch(`/api/v1/templates/${id}/preview`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
          body: JSON.stringify(body),
          credentials: "same-origin",
          signal: pending.signal,
        });
        const answer = await response.json();
        if (response.ok) show(answer);
        else fail(answer.error || {});
      } catch (error) {
        if (error.name !== "AbortError") fail({ message: "the server could not be reached" });
      }
    }

    for (const control of [seed, version]) control.addEventListener("change", refresh);
    language.addEventListener("change", refresh);
    $("refresh").addEventListener("click", refresh);
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const panel of document.querySelectorAll("[data-preview]")) setup(panel);
    const form = document.querySelector("[data-editor-form]");
    const unsaved = document.querySelector("[data-unsaved]");
    if (form && unsaved) form.addEventListener("input", () => { unsaved.hidden = false; });
  });
})();

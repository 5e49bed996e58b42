// An audience's filters: as they are typed, who they would keep, counted by the server (POST
// /api/v1/audiences/preview with the page's CSRF token), or why they cannot be counted. Without JavaScript the
// page shows the saved filters' count.
"use strict";

(() => {
  const token = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function count(textarea, status) {
    let filters;
    try {
      filters = textarea.value.trim() ? JSON.parse(textarea.value) : [];
    } catch (error) {
      status.textContent = `Not valid JSON: ${error.message}.`;
      status.className = "count-live invalid warning";
      return;
    }
    const answer = await fetch("/api/v1/audiences/preview", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token() },
      body: JSON.stringify({ filters }),
      credentials: "same-origin",
    });
    const body = await answer.json().catch(() => ({}));
    if (answer.ok) {
      const n = (value) => value.toLocaleString("en");
      status.textContent = `These filters keep ${n(body.total)} profiles, ${n(body.subscribed)} subscribed: a delivery would reach ${n(body.reachable)}.`;
      status.className = "count-live";
    } else {
      const error = body.error || {};
      const problems = (error.errors || []).map((p) => `${p.field}: ${p.message}`);
      status.textContent = problems.length ? problems.join("; ") : `${error.field ? error.field + ": " : ""}${error.message || "cannot be counted"}`;
      status.className = "count-live warning";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("form[data-audience-form]");
    const textarea = form?.querySelector("textarea[name=filters]");
    const status = form?.querySelector("[data-live-count]");
    if (!textarea || !status) return;
    let timer = null;
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(() => count(textarea, status).catch(() => {}), 300);
    };
    textarea.addEventListener("input", later);
    later();
  });
})();

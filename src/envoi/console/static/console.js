// The console's small behaviours. Plain JavaScript, no build step; every page works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Forms that change something important ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // Times are written in UTC; show them in the reader's own time zone, keeping UTC in the tooltip.
  for (const time of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(time.getAttribute("datetime"));
    if (Number.isNaN(moment.getTime())) continue;
    time.title = time.textContent;
    time.textContent = moment.toLocaleString(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  // A new template shows only the fields of the channel chosen.
  for (const form of document.querySelectorAll("form[data-channel-switch]")) {
    const choice = form.querySelector("select[name=channel]");
    const show = () => {
      for (const fieldset of form.querySelectorAll("fieldset[data-channel]")) {
        const chosen = fieldset.dataset.channel === choice.value;
        fieldset.hidden = !chosen;
        fieldset.disabled = !chosen;
      }
    };
    choice.addEventListener("change", show);
    show();
  }
});

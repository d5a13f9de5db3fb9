// The dashboard works without this script; it only adds conveniences.
// It is served from the dashboard itself, because the Content-Security-Policy
// allows no inline or third-party script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "Select all" ticks every task on the page.
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll('input[name="ids"]')) {
        box.checked = all.checked;
      }
    });
  }
  // Forms with data-confirm ask before they are sent.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) {
        e.preventDefault();
      }
    });
  }
});

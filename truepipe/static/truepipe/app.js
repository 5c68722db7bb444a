// truepipe's small amount of JavaScript: board drag-and-drop, bulk selection, quick dates.
// Everything else is plain HTML forms enhanced by HTMX.
(function () {
  "use strict";

  function csrfToken() {
    var headers = document.body.getAttribute("hx-headers");
    try { return JSON.parse(headers)["X-CSRFToken"]; } catch (e) { return ""; }
  }

  // --- Board: HTML5 drag and drop. Listeners sit on the document so re-rendered boards keep working.
  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".deal-card[draggable=true]");
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.id);
  });
  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    document.querySelectorAll(".column.drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
  });
  // A column accepts the drag on dragenter and on every dragover (both must be cancelled).
  ["dragenter", "dragover"].forEach(function (name) { document.addEventListener(name, onDragOver); });
  function onDragOver(event) {
    var column = event.target.closest && event.target.closest(".column[data-stage]");
    if (!column || !dragged) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    document.querySelectorAll(".column.drop-target").forEach(function (c) {
      if (c !== column) c.classList.remove("drop-target");
    });
    column.classList.add("drop-target");
  }
  document.addEventListener("drop", function (event) {
    var column = event.target.closest && event.target.closest(".column[data-stage]");
    if (!column || !dragged) return;
    event.preventDefault();
    column.classList.remove("drop-target");
    var card = dragged;
    dragged = null;
    if (card.dataset.stage === column.dataset.stage) return;
    var board = document.getElementById("board");
    htmx.ajax("POST", board.dataset.moveUrl, {
      target: "#board",
      swap: "outerHTML",
      headers: { "X-CSRFToken": csrfToken() },
      values: {
        opportunity: card.dataset.id,
        stage: column.dataset.stage,
        version: card.dataset.version,
        owner_filter: board.dataset.owner || ""
      }
    });
  });

  // The ask-for-fields dialog: cancel leaves the card where it was (nothing was saved).
  function closeModal() {
    var modal = document.getElementById("modal");
    if (modal) modal.innerHTML = "";
    var staticAsk = document.getElementById("ask-static");
    if (staticAsk) staticAsk.remove();
  }
  document.addEventListener("click", function (event) {
    var cancel = event.target.closest && event.target.closest("[data-close-modal]");
    if (cancel) {
      event.preventDefault();
      closeModal();
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeModal();
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "board") closeModal();
    var modal = document.getElementById("modal");
    var first = modal && modal.querySelector("input:not([type=hidden]), select, textarea");
    if (first) first.focus();
  });

  // --- Pipeline list: select rows, show the fields the chosen bulk action needs.
  function syncBulk() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var selected = document.querySelectorAll("input[name=ids][form=bulk-form]:checked").length;
    var counter = form.querySelector("[data-bulk-count]");
    if (counter) counter.textContent = selected + " selected";
    form.classList.toggle("idle", selected === 0);
    var action = form.querySelector("select[name=action]").value;
    form.querySelectorAll("[data-for-action]").forEach(function (label) {
      label.hidden = label.dataset.forAction !== action;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-select-all]")) {
      document.querySelectorAll("input[name=ids][form=bulk-form]").forEach(function (box) {
        box.checked = event.target.checked;
      });
    }
    if (event.target.closest("#bulk-form") || event.target.matches("input[name=ids], [data-select-all]")) syncBulk();
  });
  document.addEventListener("DOMContentLoaded", syncBulk);
  document.addEventListener("htmx:afterSettle", syncBulk);

  // --- Log a touch: "today" / "yesterday" set the date (server's calendar) and keep the time of day.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-when]");
    if (!button) return;
    var row = button.closest(".when-row");
    var input = row.querySelector("input");
    var parts = row.dataset.today.split("-").map(Number);
    var day = new Date(Date.UTC(parts[0], parts[1] - 1, parts[2]) - Number(button.dataset.when) * 86400000);
    var time = (input.value.split("T")[1] || row.dataset.now || "09:00").slice(0, 5);
    input.value = day.getUTCFullYear() + "-" + pad(day.getUTCMonth() + 1) + "-" + pad(day.getUTCDate()) + "T" + time;
  });
})();

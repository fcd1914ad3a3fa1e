/* Vobiz Endpoints Admin: client behaviour for the list. No inline scripts, no eval (CSP).
 *  - "/" focuses the search box (unless you are typing somewhere already)
 *  - Escape cancels an inline alias edit
 *  - focus follows inline edits (into the alias field, back to the row's button)
 *  - the opt-in "Auto-refresh" checkbox reloads the table every 15 s
 *  - an error summary takes focus when a page loads with one
 *  - selection: ticking a row (or "Select all on this page") updates the selection at once;
 *    the bulk-action form shows only the fields of the chosen action
 *  - on a phone the filters fold behind their "Filters" disclosure
 */
(function () {
  "use strict";

  var AUTO_REFRESH_MS = 15000;
  var AUTO_REFRESH_KEY = "vobizadmin.autorefresh";
  var autoRefreshTimer = null;

  function isTyping(target) {
    if (!target) return false;
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function storedAutoRefresh() {
    try {
      return window.localStorage.getItem(AUTO_REFRESH_KEY) === "on";
    } catch (e) {
      return false;
    }
  }

  function storeAutoRefresh(on) {
    try {
      window.localStorage.setItem(AUTO_REFRESH_KEY, on ? "on" : "off");
    } catch (e) {
      /* private mode: the choice lasts for this page only */
    }
  }

  function refreshTable() {
    var results = document.getElementById("results");
    if (!results || !window.htmx) return;
    // Never clobber an alias being edited, a request in flight, or a hidden tab.
    if (document.hidden) return;
    if (results.querySelector("tr.editing")) return;
    if (results.classList.contains("htmx-request")) return;
    window.htmx.trigger(results, "endpoints-refresh");
  }

  function setAutoRefresh(on) {
    if (autoRefreshTimer) {
      window.clearInterval(autoRefreshTimer);
      autoRefreshTimer = null;
    }
    if (on) autoRefreshTimer = window.setInterval(refreshTable, AUTO_REFRESH_MS);
  }

  function initAutoRefresh() {
    var box = document.querySelector("[data-autorefresh]");
    var input = document.getElementById("autorefresh");
    if (!box || !input || !document.getElementById("results")) {
      setAutoRefresh(false);
      return;
    }
    box.hidden = false; // only offered when this script runs
    input.checked = storedAutoRefresh();
    setAutoRefresh(input.checked);
    if (!input.dataset.bound) {
      input.dataset.bound = "1";
      input.addEventListener("change", function () {
        storeAutoRefresh(input.checked);
        setAutoRefresh(input.checked);
      });
    }
  }

  function focusFirstAutofocus(root) {
    if (!root || !root.querySelector) return;
    var el = root.matches && root.matches("[data-autofocus]") ? root : root.querySelector("[data-autofocus]");
    if (!el) return;
    el.removeAttribute("data-autofocus");
    el.focus();
    if (el.tagName === "INPUT" && typeof el.select === "function" && el.getAttribute("aria-invalid") !== "true") {
      el.select();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/" && !isTyping(event.target)) {
      var search = document.getElementById("id_q");
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
      return;
    }
    if (event.key === "Escape") {
      var form = event.target && event.target.closest ? event.target.closest("[data-inline-edit]") : null;
      if (!form) {
        var open = document.querySelectorAll("[data-inline-edit]");
        form = open.length === 1 ? open[0] : null;
      }
      var cancel = form && form.querySelector("[data-cancel-edit]");
      if (cancel) {
        event.preventDefault();
        cancel.click();
      }
    }
  });

  /* --- selection and bulk actions ------------------------------------------------------- */

  function syncPageBox() {
    var page = document.getElementById("select-page");
    if (!page) return;
    var rows = document.querySelectorAll(".row-select");
    var ticked = document.querySelectorAll(".row-select:checked");
    page.hidden = false;
    page.checked = rows.length > 0 && ticked.length === rows.length;
    page.indeterminate = ticked.length > 0 && ticked.length < rows.length;
  }

  function initSelection(root) {
    (root || document).querySelectorAll(".js-hidden").forEach(function (el) { el.hidden = true; });
    syncPageBox();
    showBulkFields();
  }

  function selectionChanged() {
    var form = document.getElementById("selection-form");
    syncPageBox();
    if (form && window.htmx) window.htmx.trigger(form, "selection-change");
  }

  function showBulkFields() {
    var action = document.getElementById("bulk-action");
    if (!action) return;
    document.querySelectorAll("[data-bulk-for]").forEach(function (el) {
      var shown = el.getAttribute("data-bulk-for") === action.value;
      el.hidden = !shown;
      el.querySelectorAll("select, input").forEach(function (c) { c.disabled = !shown; });
    });
  }

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!el || !el.matches) return;
    if (el.matches(".row-select")) {
      selectionChanged();
    } else if (el.matches("#select-page")) {
      document.querySelectorAll(".row-select").forEach(function (box) { box.checked = el.checked; });
      selectionChanged();
    } else if (el.matches("#bulk-action")) {
      showBulkFields();
    }
  });

  /* --- filters on a phone ---------------------------------------------------------------- */

  function foldFilters() {
    var details = document.querySelector("details.filters-disclosure");
    if (details && window.matchMedia && window.matchMedia("(max-width: 640px)").matches) {
      details.open = false;
    }
  }

  // Content swapped in by htmx: move focus where the user expects it.
  document.addEventListener("htmx:load", function (event) {
    focusFirstAutofocus(event.detail && event.detail.elt);
    initSelection(event.detail && event.detail.elt);
    if (event.detail && event.detail.elt && event.detail.elt.id === "list-body") foldFilters();
  });

  // Back/forward: htmx reloads the whole page into <body>; re-wire the page controls.
  document.addEventListener("htmx:historyRestore", initAutoRefresh);

  document.addEventListener("DOMContentLoaded", function () {
    initAutoRefresh();
    initSelection(document);
    foldFilters();
    var summary = document.querySelector(".error-summary[tabindex]");
    if (summary && !document.querySelector("[autofocus]")) summary.focus();
  });
})();

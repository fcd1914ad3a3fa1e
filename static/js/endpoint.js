/* Behaviour for the endpoint pages (no inline scripts: the CSP forbids them).
 *
 * - Copy buttons: [data-copy-target="element-id"] copy that element's text.
 * - Password fields: [data-password-generate] fills a strong random password (crypto.getRandomValues),
 *   [data-password-toggle] shows / hides it.
 * - [data-countdown] <time> elements count down to their datetime.
 * - [data-app-search="select-id"] filters that select's options as you type.
 * - [data-error-summary] gets focus when the page (or an htmx swap) shows one.
 * - form[data-single-submit] cannot be submitted twice by a double click.
 * - input[data-pattern] only gets its pattern once the user changes the value, so a legacy
 *   value that breaks today's rules can be left alone.
 * Controls that need this script are rendered `hidden` and revealed here.
 */
(function () {
  "use strict";
  if (window.vobizEndpointJs) return;
  window.vobizEndpointJs = true;

  var PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  var PASSWORD_LENGTH = 20;

  function randomPassword() {
    var chars = [];
    var n = PASSWORD_ALPHABET.length;
    var limit = 256 - (256 % n); // rejection sampling: no modulo bias
    var bytes = new Uint8Array(64);
    while (chars.length < PASSWORD_LENGTH) {
      window.crypto.getRandomValues(bytes);
      for (var i = 0; i < bytes.length && chars.length < PASSWORD_LENGTH; i++) {
        if (bytes[i] < limit) chars.push(PASSWORD_ALPHABET.charAt(bytes[i] % n));
      }
    }
    return chars.join("");
  }

  function announce(text) {
    var region = document.getElementById("endpoint-live");
    if (!region) {
      region = document.createElement("div");
      region.id = "endpoint-live";
      region.className = "visually-hidden";
      region.setAttribute("aria-live", "polite");
      document.body.appendChild(region);
    }
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  /* --- copy ------------------------------------------------------------------------------ */

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copyFrom(button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target) return;
    var text = target.textContent.trim();
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    function done(ok) {
      button.textContent = ok ? "Copied" : "Press Ctrl+C to copy";
      announce(ok ? label.replace(/^Copy /, "") + " copied to the clipboard." : "Text selected: press Ctrl+C to copy.");
      window.setTimeout(function () { button.textContent = label; }, 2000);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () {
        selectText(target);
        done(false);
      });
    } else {
      selectText(target);
      done(false);
    }
  }

  /* --- password fields ------------------------------------------------------------------- */

  function setShown(input, shown) {
    input.type = shown ? "text" : "password";
    var toggle = document.querySelector('[data-password-toggle="' + input.id + '"]');
    if (toggle) {
      toggle.setAttribute("aria-pressed", shown ? "true" : "false");
      toggle.innerHTML = "";
      toggle.appendChild(document.createTextNode(shown ? "Hide" : "Show"));
      var hidden = document.createElement("span");
      hidden.className = "visually-hidden";
      hidden.textContent = " password";
      toggle.appendChild(hidden);
    }
  }

  /* --- countdown ------------------------------------------------------------------------- */

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function remainingText(ms) {
    if (ms <= 0) return "expired";
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var sec = s % 60;
    if (h > 0) return "in " + h + " h " + pad(m) + " min";
    if (m > 0) return "in " + m + " min " + pad(sec) + " s";
    return "in " + sec + " s";
  }

  var ticking = null;

  function tick() {
    var now = Date.now();
    var countdowns = document.querySelectorAll("time[data-countdown]");
    if (!countdowns.length && ticking) {
      window.clearInterval(ticking);
      ticking = null;
    }
    countdowns.forEach(function (el) {
      var when = Date.parse(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var text = remainingText(when - now);
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("countdown-soon", when - now > 0 && when - now < 5 * 60 * 1000);
      el.classList.toggle("countdown-expired", when - now <= 0);
    });
  }

  /* --- application picker ---------------------------------------------------------------- */

  function filterOptions(input) {
    var select = document.getElementById(input.getAttribute("data-app-search"));
    if (!select) return;
    var query = input.value.trim().toLowerCase();
    var shown = 0, total = 0;
    Array.prototype.forEach.call(select.options, function (option) {
      if (option.value === "") { option.hidden = false; return; }
      total += 1;
      var match = !query || option.text.toLowerCase().indexOf(query) !== -1;
      option.hidden = !match && !option.selected;
      if (match) shown += 1;
    });
    var count = input.parentNode.querySelector("[data-app-search-count]");
    if (count) {
      count.textContent = query ? shown + " of " + total + " applications match." : "";
    }
  }

  /* --- setup ----------------------------------------------------------------------------- */

  function focusSummary(root) {
    var summary = (root || document).querySelector("[data-error-summary]");
    if (summary) {
      summary.focus();
      return true;
    }
    return false;
  }

  function init(root) {
    root = root || document;
    root.querySelectorAll("[data-copy-target], [data-password-generate], [data-password-toggle]")
      .forEach(function (el) { el.hidden = false; });
    root.querySelectorAll("[data-app-search-wrap]").forEach(function (el) { el.hidden = false; });
    tick();
    // Tick every second only while something on the page counts down.
    if (!ticking && document.querySelector("time[data-countdown]")) {
      ticking = window.setInterval(tick, 1000);
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) return;
    if (button.hasAttribute("data-copy-target")) {
      copyFrom(button);
    } else if (button.hasAttribute("data-password-generate")) {
      var input = document.getElementById(button.getAttribute("data-password-generate"));
      if (!input) return;
      input.value = randomPassword();
      setShown(input, true);
      input.dispatchEvent(new Event("input", { bubbles: true }));
      announce("A random password was generated and is shown in the field.");
    } else if (button.hasAttribute("data-password-toggle")) {
      var field = document.getElementById(button.getAttribute("data-password-toggle"));
      if (field) setShown(field, field.type === "password");
    }
  });

  // Error summary links move focus to the field itself (and show its label).
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-error-summary] a[href^='#']");
    if (!link) return;
    var field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    var label = document.querySelector("label[for='" + field.id + "']");
    (label || field).scrollIntoView({ block: "center" });
    field.focus({ preventScroll: true });
  });

  document.addEventListener("input", function (event) {
    var el = event.target;
    if (el.hasAttribute && el.hasAttribute("data-app-search")) filterOptions(el);
    if (el.hasAttribute && el.hasAttribute("data-pattern")) {
      if (el.value !== el.defaultValue) el.setAttribute("pattern", el.getAttribute("data-pattern"));
      else el.removeAttribute("pattern");
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-single-submit")) return;
    if (form.getAttribute("data-submitting") === "true") {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-submitting", "true");
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      b.setAttribute("aria-disabled", "true");
    });
  });

  // Back/forward cache: a restored page can be submitted again deliberately.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-single-submit]").forEach(function (form) {
      form.removeAttribute("data-submitting");
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        b.removeAttribute("aria-disabled");
      });
    });
  });

  // htmx fires htmx:load on every piece of content it swaps in.
  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || elt === document.body) return;
    init(elt);
    focusSummary(elt);
  });

  function start() {
    init(document);
    if (!focusSummary(document)) {
      var reveal = document.querySelector("[data-reveal]");
      if (reveal) reveal.focus();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* The Overview page's chart (no inline scripts: the CSP forbids them).
 *
 * [data-overview-chart] is the container; its data-source is the URL of the chart's JSON
 * (endpoints.views.overview.overview_data: {period, since, now, registered_now,
 * points: [{t: epoch seconds, registered, drops}]}). Draws registered endpoints as a line and
 * drops as bars with uPlot (static/vendor/uplot), times in the viewer's zone, UTC on hover.
 * [data-overview-chart-status] says what went wrong if the numbers cannot be loaded. On a
 * page without the container this does nothing. The page's table holds the same numbers, so
 * nothing is lost without JavaScript.
 */
(function () {
  "use strict";
  var box = document.querySelector("[data-overview-chart]");
  if (!box || !box.dataset.source) return;
  var status = document.querySelector("[data-overview-chart-status]");
  var HEIGHT = 320;

  function say(text) {
    if (status) status.textContent = text;
  }

  if (typeof window.uPlot !== "function") {
    say("The chart could not be drawn; the numbers are in the table below.");
    return;
  }

  function cssVar(name, fallback) {
    var value = window.getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value && value.trim()) || fallback;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function localTime(seconds) {
    var d = new Date(seconds * 1000);
    return d.toLocaleString(undefined, {
      weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    });
  }

  function utcTime(seconds) {
    var d = new Date(seconds * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  function count(u, value) {
    return value == null ? "—" : Number(value).toLocaleString();
  }

  // Whole numbers only on the count axes: there is no half an endpoint.
  var WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000,
    100000, 200000, 500000, 1000000];

  function width() {
    var style = window.getComputedStyle(box);
    var padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    return Math.max(240, Math.floor(box.clientWidth - padding));
  }

  function draw(data) {
    var points = data.points || [];
    if (!points.length) {
      say("No registration history yet: nothing to draw.");
      return;
    }
    var xs = [], registered = [], drops = [];
    points.forEach(function (p) {
      xs.push(p.t);
      registered.push(p.registered);
      drops.push(p.drops);
    });
    var fg = cssVar("--fg-muted", "#505a64");
    var grid = cssVar("--border", "#c9ced4");
    var accent = cssVar("--accent", "#1d5fa8");
    var warn = cssVar("--warn-border", "#d98a00");
    var axis = function (extra) {
      var base = {
        stroke: fg,
        grid: { stroke: grid, width: 1 },
        ticks: { stroke: grid, width: 1 },
        labelFont: "600 13px system-ui, sans-serif",
        font: "12px system-ui, sans-serif",
      };
      Object.keys(extra).forEach(function (k) { base[k] = extra[k]; });
      return base;
    };
    var opts = {
      width: width(),
      height: HEIGHT,
      scales: {
        x: { time: true },
        registered: { range: function (u, min, max) { return [0, Math.max(1, max) * 1.1]; } },
        drops: { range: function (u, min, max) { return [0, Math.max(1, max) * 3]; } },
      },
      series: [
        {
          label: "Time",
          value: function (u, v) { return v == null ? "—" : localTime(v) + " (" + utcTime(v) + ")"; },
        },
        {
          label: "Registered endpoints",
          scale: "registered",
          stroke: accent,
          width: 2,
          value: count,
          points: { show: points.length < 60 },
        },
        {
          label: "Drops",
          scale: "drops",
          stroke: warn,
          fill: warn,
          width: 1,
          value: count,
          paths: window.uPlot.paths.bars({ size: [0.7, 24], align: 1 }),
          points: { show: false },
        },
      ],
      axes: [
        axis({ label: "Time (your time zone)" }),
        axis({ label: "Registered endpoints", scale: "registered", size: 64, incrs: WHOLE }),
        axis({ label: "Drops", scale: "drops", side: 1, size: 56, incrs: WHOLE,
          grid: { show: false } }),
      ],
    };
    var chart = new window.uPlot(opts, [xs, registered, drops], box);
    box.setAttribute("data-overview-chart-drawn", "");
    if (typeof window.ResizeObserver === "function") {
      var last = opts.width;
      new window.ResizeObserver(function () {
        var next = width();
        if (next !== last) {
          last = next;
          chart.setSize({ width: next, height: HEIGHT });
        }
      }).observe(box);
    }
  }

  window.fetch(box.dataset.source, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  }).then(function (response) {
    var type = response.headers.get("Content-Type") || "";
    if (!response.ok || type.indexOf("application/json") === -1) {
      // A redirect to the login page answers HTML: the session has ended.
      throw new Error(response.redirected ? "session" : "status " + response.status);
    }
    return response.json();
  }).then(draw, function (error) {
    say(error && error.message === "session"
      ? "Your session has ended: reload the page to log in again. The table below still shows the numbers."
      : "The chart could not be loaded; the numbers are in the table below.");
  });
})();

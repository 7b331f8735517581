/*
 * Analytics → Token Statistics: the charts and the period picker.
 *
 * Chart data comes from <script type="application/json"> tags written by Django's
 * json_script (CSP-safe: not executed); every chart's numbers are also in a table on
 * the page, so nothing is lost without JavaScript. Needs vendor/chartjs (window.Chart).
 */
(function () {
  "use strict";

  var COLORS = {
    inference: { fill: "#6366f1", hover: "#4f46e5" },
    embedding: { fill: "#2dd4bf", hover: "#14b8a6" },
    /* The forecast (docs/forecasts.md): the same hues, pale, stacked on the usage. */
    "projection-inference": { fill: "rgba(99, 102, 241, 0.28)", hover: "rgba(99, 102, 241, 0.45)" },
    "projection-embedding": { fill: "rgba(45, 212, 191, 0.32)", hover: "rgba(45, 212, 191, 0.5)" },
  };
  var MUTED = "#71717a";
  var GRID = "#efeff2";
  var numbers = new Intl.NumberFormat("en-US");
  var compact = new Intl.NumberFormat("en-US", {
    notation: "compact",
    maximumFractionDigits: 1,
  });
  var dayLabel = new Intl.DateTimeFormat("en-GB", {
    day: "numeric",
    month: "short",
    timeZone: "UTC",
  });
  var dayTitle = new Intl.DateTimeFormat("en-GB", {
    weekday: "short",
    day: "numeric",
    month: "short",
    year: "numeric",
    timeZone: "UTC",
  });

  function readJSON(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function parseDay(iso) {
    var parts = iso.split("-");
    return new Date(Date.UTC(+parts[0], +parts[1] - 1, +parts[2]));
  }

  function datasets(data) {
    return data.datasets.map(function (set) {
      var color = COLORS[set.key] || COLORS.inference;
      return {
        label: set.label,
        data: set.data,
        backgroundColor: color.fill,
        hoverBackgroundColor: color.hover,
        borderRadius: 3,
        borderSkipped: "start",
        maxBarThickness: 36,
      };
    });
  }

  function baseOptions(data, horizontal) {
    var valueAxis = {
      stacked: true,
      beginAtZero: true,
      border: { display: false },
      grid: { color: GRID },
      ticks: {
        color: MUTED,
        maxTicksLimit: 6,
        callback: function (value) {
          return compact.format(value);
        },
      },
    };
    var categoryAxis = {
      stacked: true,
      border: { color: "#d4d4d8" },
      grid: { display: false },
      ticks: { color: MUTED, autoSkipPadding: 12, maxRotation: 0 },
    };
    var reduceMotion =
      window.matchMedia &&
      window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: reduceMotion ? false : { duration: 400 },
      indexAxis: horizontal ? "y" : "x",
      interaction: { mode: "index", intersect: false },
      scales: horizontal
        ? { x: valueAxis, y: categoryAxis }
        : { x: categoryAxis, y: valueAxis },
      plugins: {
        legend: {
          display: data.datasets.length > 1,
          position: "top",
          align: "end",
          labels: {
            color: "#3f3f46",
            boxWidth: 10,
            boxHeight: 10,
            useBorderRadius: true,
            borderRadius: 2,
          },
        },
        tooltip: {
          backgroundColor: "#18181b",
          padding: 10,
          cornerRadius: 6,
          boxPadding: 4,
          callbacks: {
            label: function (context) {
              return " " + context.dataset.label + ": " + numbers.format(context.raw);
            },
            footer: function (items) {
              if (items.length < 2) {
                return "";
              }
              var total = items.reduce(function (sum, item) {
                return sum + item.raw;
              }, 0);
              return "Total: " + numbers.format(total);
            },
          },
        },
      },
    };
  }

  var builders = {
    daily: function (data) {
      var options = baseOptions(data, false);
      options.scales.x.ticks.callback = function (value) {
        return dayLabel.format(parseDay(data.labels[value]));
      };
      options.plugins.tooltip.callbacks.title = function (items) {
        return dayTitle.format(parseDay(data.labels[items[0].dataIndex]));
      };
      return { type: "bar", data: { labels: data.labels, datasets: datasets(data) }, options: options };
    },
    monthly: function (data) {
      return {
        type: "bar",
        data: { labels: data.labels, datasets: datasets(data) },
        options: baseOptions(data, false),
      };
    },
    models: function (data) {
      var options = baseOptions(data, true);
      options.scales.y.ticks.autoSkip = false;
      return { type: "bar", data: { labels: data.labels, datasets: datasets(data) }, options: options };
    },
  };

  function drawCharts() {
    if (!window.Chart) {
      return;
    }
    var Chart = window.Chart;
    Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 12;
    Chart.defaults.color = MUTED;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var data = readJSON(canvas.dataset.source);
      var build = builders[canvas.dataset.chart];
      if (data && build && !Chart.getChart(canvas)) {
        new Chart(canvas, build(data));
      }
    });
  }

  /* The period picker: only the inputs of the chosen mode show (and are sent). */
  function periodPicker() {
    var form = document.querySelector("[data-period-form]");
    var mode = form && form.querySelector("[data-period-mode]");
    if (!mode) {
      return;
    }
    var inputs = form.querySelectorAll("[data-period]");
    var defaults = {
      month: form.dataset.defaultMonth,
      start: form.dataset.defaultStart,
      end: form.dataset.defaultEnd,
    };

    function sync() {
      var chosen = mode.value || "current";
      inputs.forEach(function (input) {
        var active = input.dataset.period === chosen;
        var field = input.closest(".field") || input;
        field.hidden = !active;
        input.disabled = !active;
        if (active && !input.value && defaults[input.name]) {
          input.value = defaults[input.name];
        }
      });
    }

    mode.addEventListener("change", sync);
    sync();
  }

  /* The export menu (a <details>) closes on Escape and on a click elsewhere. */
  function exportMenu() {
    var menu = document.querySelector(".export-menu");
    if (!menu) {
      return;
    }
    document.addEventListener("click", function (event) {
      if (menu.open && !menu.contains(event.target)) {
        menu.open = false;
      }
    });
    menu.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  }

  function init() {
    periodPicker();
    exportMenu();
    drawCharts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

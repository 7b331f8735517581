/*
 * Enterprise Account: progressive enhancement only. Every page works without this file.
 *
 * Navigation drawer (< 1200 px). Without JavaScript the drawer is a CSS checkbox hack:
 * the hidden #nav-toggle checkbox is the keyboard control and the hamburger/backdrop
 * labels toggle it. With JavaScript the hamburger becomes the control (role=button,
 * focusable, Enter/Space, aria-expanded) and the drawer also closes on Esc, on choosing a
 * page, and when the page is restored from the back/forward cache; the rest of the page
 * is inert while the drawer is open.
 *
 * Alerts get a dismiss button.
 *
 * Tables: a header checkbox with data-select-all="NAME" selects every checkbox named
 * NAME (and shows the mixed state). The bulk-action form (#bulk-form) shows the token
 * type / limit controls ([data-bulk-limit]) only for the "Set a limit" action; without
 * JavaScript they are always shown. <html> gets the "js" class for CSS.
 */
(function () {
  "use strict";

  var DRAWER_QUERY = "(max-width: 1199.98px)";

  function initDrawer() {
    var toggle = document.getElementById("nav-toggle");
    var sidebar = document.getElementById("sidebar");
    if (!toggle || !sidebar) {
      return;
    }
    var openers = Array.prototype.slice.call(document.querySelectorAll(".nav-open"));
    var closers = Array.prototype.slice.call(document.querySelectorAll(".nav-close"));
    var main = document.querySelector(".main");
    var drawerMedia = window.matchMedia(DRAWER_QUERY);

    // Hand keyboard control from the hidden checkbox to the visible labels.
    toggle.setAttribute("tabindex", "-1");
    toggle.setAttribute("aria-hidden", "true");
    openers.concat(closers).forEach(function (label) {
      label.removeAttribute("aria-hidden");
      label.setAttribute("tabindex", "0");
      label.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " " || event.key === "Spacebar") {
          event.preventDefault();
          label.click();
        }
      });
    });

    function isDrawerMode() {
      return drawerMedia.matches;
    }

    function sync() {
      var open = toggle.checked && isDrawerMode();
      openers.forEach(function (label) {
        label.setAttribute("aria-expanded", open ? "true" : "false");
      });
      if (main) {
        if (open) {
          main.setAttribute("inert", "");
        } else {
          main.removeAttribute("inert");
        }
      }
    }

    function focusFirstLink() {
      var first = sidebar.querySelector(".nav-link[aria-current='page']") ||
        sidebar.querySelector(".nav-link");
      if (first) {
        first.focus({ preventScroll: true });
      }
    }

    function close(restoreFocus) {
      if (!toggle.checked) {
        return;
      }
      toggle.checked = false;
      afterClose(restoreFocus);
    }

    function afterClose(restoreFocus) {
      sync();
      if (restoreFocus && openers[0] && isDrawerMode()) {
        openers[0].focus({ preventScroll: true });
      }
    }

    // The labels toggle the checkbox natively; keep ARIA and focus in step.
    toggle.addEventListener("change", function () {
      if (toggle.checked) {
        sync();
        focusFirstLink();
      } else {
        afterClose(true);
      }
    });

    document.addEventListener("keydown", function (event) {
      if ((event.key === "Escape" || event.key === "Esc") && toggle.checked) {
        event.preventDefault();
        close(true);
      }
    });

    // Choosing a page closes the drawer (the next page starts closed anyway; this keeps
    // the back/forward cache copy closed too).
    sidebar.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("a[href]") : null;
      if (link && sidebar.contains(link)) {
        close(false);
      }
    });

    window.addEventListener("pageshow", function () {
      toggle.checked = false;
      sync();
    });

    var onMediaChange = function () {
      if (!isDrawerMode()) {
        toggle.checked = false;
      }
      sync();
    };
    if (typeof drawerMedia.addEventListener === "function") {
      drawerMedia.addEventListener("change", onMediaChange);
    } else if (typeof drawerMedia.addListener === "function") {
      drawerMedia.addListener(onMediaChange);
    }

    sync();
  }

  function initAlerts() {
    var alerts = document.querySelectorAll(".messages .alert");
    Array.prototype.forEach.call(alerts, function (alert) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "alert-dismiss";
      button.setAttribute("aria-label", "Dismiss");
      button.innerHTML =
        '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">' +
        '<path d="M18 6 6 18"/><path d="m6 6 12 12"/></svg>';
      button.addEventListener("click", function () {
        var container = alert.parentNode;
        alert.remove();
        if (container && !container.querySelector(".alert")) {
          container.remove();
        }
      });
      alert.appendChild(button);
    });
  }

  function initSelectAll() {
    var masters = document.querySelectorAll("input[type='checkbox'][data-select-all]");
    Array.prototype.forEach.call(masters, function (master) {
      var name = master.getAttribute("data-select-all");
      var selector = "input[type='checkbox'][name='" +
        (window.CSS && CSS.escape ? CSS.escape(name) : name) + "']";

      function boxes() {
        return Array.prototype.filter.call(
          document.querySelectorAll(selector),
          function (box) { return box !== master && !box.disabled; }
        );
      }

      function sync() {
        var all = boxes();
        var checked = all.filter(function (box) { return box.checked; }).length;
        master.checked = all.length > 0 && checked === all.length;
        master.indeterminate = checked > 0 && checked < all.length;
      }

      master.addEventListener("change", function () {
        var on = master.checked;
        boxes().forEach(function (box) {
          box.checked = on;
        });
        master.indeterminate = false;
      });
      document.addEventListener("change", function (event) {
        var target = event.target;
        if (target !== master && target.type === "checkbox" && target.name === name) {
          sync();
        }
      });
      // The back/forward cache and form restoration bring back row checks.
      window.addEventListener("pageshow", sync);
      sync();
    });
  }

  function initBulkForm() {
    var form = document.getElementById("bulk-form");
    if (!form) {
      return;
    }
    var action = form.querySelector("select[name='action']");
    var limitControls = form.querySelector("[data-bulk-limit]");
    if (!action || !limitControls) {
      return;
    }
    function sync() {
      limitControls.hidden = action.value !== "set_limit";
    }
    action.addEventListener("change", sync);
    window.addEventListener("pageshow", sync);
    sync();
  }

  function init() {
    initDrawer();
    initAlerts();
    initSelectAll();
    initBulkForm();
  }

  document.documentElement.classList.add("js");

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

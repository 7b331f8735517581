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

  function init() {
    initDrawer();
    initAlerts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

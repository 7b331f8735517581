// Row menus (details.row-menu, css/tables.css): an open menu is placed in the window
// with fixed coordinates, so a table's scroll box cannot cut it, and follows its
// button when the page or the table scrolls; one menu is open at a time; Esc or a
// click elsewhere closes it. Without JavaScript the menu still opens (inside the
// table's box).
(function () {
  "use strict";

  function closeAll(except) {
    document.querySelectorAll("details.row-menu[open]").forEach(function (menu) {
      if (menu !== except) {
        menu.open = false;
      }
    });
  }

  function place(menu) {
    var list = menu.querySelector(".row-menu-list");
    var summary = menu.querySelector("summary");
    if (!list || !summary) {
      return;
    }
    list.classList.add("is-placed");
    var anchor = summary.getBoundingClientRect();
    var width = list.offsetWidth;
    var height = list.offsetHeight;
    var left = Math.min(anchor.right - width, window.innerWidth - width - 8);
    var top = anchor.bottom + 4;
    if (top + height > window.innerHeight - 8 && anchor.top - height - 4 > 8) {
      top = anchor.top - height - 4;
    }
    list.style.left = Math.max(8, left) + "px";
    list.style.top = Math.max(8, top) + "px";
  }

  document.addEventListener(
    "toggle",
    function (event) {
      var menu = event.target;
      if (!(menu instanceof HTMLDetailsElement) || !menu.classList.contains("row-menu")) {
        return;
      }
      if (menu.open) {
        closeAll(menu);
        place(menu);
      }
    },
    true
  );

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var open = document.querySelector("details.row-menu[open]");
      if (open) {
        open.open = false;
        open.querySelector("summary").focus();
      }
    }
  });

  document.addEventListener("click", function (event) {
    if (!event.target.closest("details.row-menu")) {
      closeAll(null);
    }
  });

  // Scrolling or resizing moves the menu with its button.
  function replaceOpen() {
    document.querySelectorAll("details.row-menu[open]").forEach(place);
  }
  window.addEventListener("resize", replaceOpen);
  document.addEventListener("scroll", replaceOpen, true);
})();

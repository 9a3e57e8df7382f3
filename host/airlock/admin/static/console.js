// Airlock console: keep the page current by fetching its <main> again every few seconds.
// Server-rendered fragments (already escaped by the server); no build step, no third-party code.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) {
    return;
  }
  var every = parseInt(live.getAttribute("data-refresh-ms") || "3000", 10);
  var stamp = document.getElementById("refreshed");

  // Never replace what the operator is typing into, or a call's details they opened.
  function busy() {
    var el = document.activeElement;
    if (el && live.contains(el) && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) {
      return true;
    }
    return live.querySelector("details[open]") !== null;
  }

  function refresh() {
    if (document.hidden || busy()) {
      return;
    }
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/login");
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && !busy()) {
          live.innerHTML = html;
          live.setAttribute("data-refreshed", String(Date.now()));
          if (stamp) {
            stamp.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
          }
        }
      })
      .catch(function () { /* the gateway is restarting or gone: try again next time */ });
  }

  window.setInterval(refresh, every);
})();

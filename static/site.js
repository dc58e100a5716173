// Keep "3 hours ago" true on a cached page: recompute from each <time datetime>.
(function () {
  "use strict";
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
  var fmt = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat("en", { numeric: "auto" }) : null;
  function refresh() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t) || !fmt) return;
      var s = Math.round((t - now) / 1000);
      for (var i = 0; i < units.length; i++) {
        if (Math.abs(s) >= units[i][1] || i === units.length - 1) {
          el.textContent = fmt.format(Math.round(s / units[i][1]), units[i][0]);
          return;
        }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", refresh);
  setInterval(refresh, 60000);
})();

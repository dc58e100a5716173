// Keep ages true on a cached page, by the server's own rule (aggregator/freshness.py):
// "3 days ago" is rounded down in the largest unit that fits; the badge's "Today" is the
// calendar day in the site's time zone (<html data-tz>), "This week" its ISO week.
(function () {
  "use strict";
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
  var tz = document.documentElement.getAttribute("data-tz") || "UTC";

  function relative(t, now) {
    var s = Math.trunc((now - t) / 1000);
    var a = Math.abs(s);
    if (a < 60) return "just now";
    for (var i = 0; i < units.length; i++) {
      if (a >= units[i][1]) {
        var n = Math.floor(a / units[i][1]);
        var words = n + " " + units[i][0] + (n === 1 ? "" : "s");
        return s > 0 ? words + " ago" : "in " + words;
      }
    }
    return "just now";
  }

  function day(t) {  // [year, month, day] of a moment in the site's time zone
    var parts = {};
    new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date(t)).forEach(function (p) { parts[p.type] = p.value; });
    return [+parts.year, +parts.month, +parts.day];
  }

  function isoWeek(d) {  // [ISO year, ISO week] of a calendar day
    var date = new Date(Date.UTC(d[0], d[1] - 1, d[2]));
    var weekday = date.getUTCDay() || 7;
    date.setUTCDate(date.getUTCDate() + 4 - weekday);
    var start = new Date(Date.UTC(date.getUTCFullYear(), 0, 1));
    return [date.getUTCFullYear(), Math.ceil(((date - start) / 86400000 + 1) / 7)];
  }

  function ageClass(t, now) {
    if (now - t < 6 * 3600 * 1000) return ["fresh", "Fresh"];
    var a = day(t), b = day(now);
    if (a.join() === b.join()) return ["today", "Today"];
    if (isoWeek(a).join() === isoWeek(b).join()) return ["week", "This week"];
    return ["older", "Older"];
  }

  function refresh() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = relative(t, now);
    });
    if (!(window.Intl && Intl.DateTimeFormat)) return;
    document.querySelectorAll(".badge[data-since]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-since"));
      if (isNaN(t)) return;
      var c = ageClass(t, now);
      el.className = "badge badge-" + c[0];
      el.setAttribute("data-age", c[0]);
      el.textContent = c[1];
    });
  }
  document.addEventListener("DOMContentLoaded", refresh);
  setInterval(refresh, 60000);
})();

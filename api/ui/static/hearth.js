// Hearth console: progressive enhancement only. Every page works without this file.
// 1. A running run's event log follows the run live (EventSource on the console's
//    own SSE route; the same stream as GET /api/v1/runs/{id}/events).
// 2. Forms with data-confirm ask before posting.
"use strict";
(function () {
  function startLog(log) {
    var url = log.getAttribute("data-events");
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener("event", function (message) {
      var data = {};
      try { data = JSON.parse(message.data); } catch (e) { return; }
      var item = document.createElement("li");
      var badge = document.createElement("span");
      var name = String(data.event || "event");
      badge.className = "badge " + (/failed|unreachable/.test(name) ? "bad" : "neutral");
      badge.textContent = name;
      item.appendChild(badge);
      item.appendChild(document.createTextNode(" " + (data.host || "") + " " + (data.task || "")));
      log.appendChild(item);
      log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("end", function (message) {
      source.close();
      var data = {};
      try { data = JSON.parse(message.data); } catch (e) { /* keep going */ }
      var status = document.getElementById("run-status");
      if (status && data.status) {
        var badge = document.createElement("span");
        badge.className = "badge " + (data.status === "succeeded" ? "ok" : "bad");
        badge.textContent = data.status;
        status.replaceChildren(badge);
      }
      var live = document.getElementById("run-live");
      if (live) live.textContent = "The run has ended.";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var log = document.getElementById("run-log");
    if (log) startLog(log);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  });
})();

// The live page: follows /ui/live/stream (the session's event stream) with EventSource.
// New events go on top of the feed (a fixed-height box: nothing below it moves), the
// in-flight table and the per-front-end rates update in place. EventSource reconnects
// by itself and sends Last-Event-ID, so the server resumes after the last event seen.
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root) return;
  var feed = document.getElementById("feed");
  var flight = document.getElementById("in-flight");
  var flightCount = document.getElementById("in-flight-count");
  var status = document.getElementById("stream-status");
  var MAX_ROWS = 200;
  var seen = {};
  var recent = []; // [at_ms, via]
  Array.prototype.forEach.call(feed.rows, function (r) { seen[r.dataset.id] = true; });

  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  function when(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
  }
  function detailText(d) {
    if (d === null || d === undefined) return "";
    return Object.keys(d).map(function (k) {
      var v = d[k];
      return k + "=" + (typeof v === "object" ? JSON.stringify(v) : v);
    }).join(" ");
  }
  function isFinal(ev) {
    return ev.stage === "booted" || ev.stage === "ignored" ||
      (ev.stage === "failed" && ev.detail && ev.detail["final"] === true);
  }
  function updateFlight(ev) {
    var row = flight.querySelector('tr[data-mac="' + ev.mac + '"]');
    if (isFinal(ev)) {
      if (row) row.remove();
    } else {
      if (!row) {
        row = document.createElement("tr");
        row.dataset.mac = ev.mac;
        cell(row, ev.mac); cell(row, ""); cell(row, "");
        flight.appendChild(row);
      }
      row.cells[2].textContent = ev.stage;
    }
    flightCount.textContent = String(flight.rows.length);
  }
  function updateRates(ev) {
    var now = Date.now();
    recent.push([now, ev.via]);
    while (recent.length && recent[0][0] < now - 60000) recent.shift();
    var n = { dhcp: 0, tftp: 0, http: 0 };
    recent.forEach(function (x) { if (x[1] in n) n[x[1]] += 1; });
    Object.keys(n).forEach(function (k) {
      document.getElementById("rate-" + k).textContent = String(n[k]);
    });
  }
  function onEvent(msg) {
    var ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    if (seen[ev.id]) return;
    seen[ev.id] = true;
    var tr = document.createElement("tr");
    tr.dataset.id = ev.id;
    tr.className = "fresh";
    cell(tr, ev.id); cell(tr, when(ev.at_ms)); cell(tr, ev.mac);
    cell(tr, ev.stage); cell(tr, ev.via); cell(tr, detailText(ev.detail));
    feed.insertBefore(tr, feed.firstChild);
    while (feed.rows.length > MAX_ROWS) feed.deleteRow(feed.rows.length - 1);
    updateFlight(ev);
    updateRates(ev);
  }
  var es = new EventSource("/ui/live/stream?after=" + encodeURIComponent(root.dataset.after));
  root.dataset.stages.split(",").forEach(function (s) { es.addEventListener(s, onEvent); });
  es.onopen = function () { status.textContent = "● connected"; };
  es.onerror = function () {
    status.textContent = es.readyState === EventSource.CLOSED ? "disconnected (reload)" : "reconnecting…";
  };
})();

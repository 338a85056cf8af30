// availmon's web view: the live strips (Server-Sent Events from /events), the components'
// status, and the buttons and forms that call the JSON API with the bearer token (asked
// once, kept in this tab's sessionStorage). No framework, no build step.
(function () {
  "use strict";
  var KEEP = 600;
  var TOKEN_KEY = "availmon.token";
  var WORDS = {
    operational: "Operational", degraded_performance: "Degraded performance",
    partial_outage: "Partial outage", major_outage: "Major outage",
    under_maintenance: "Under maintenance"
  };

  function all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function clock(t) { return new Date(t * 1000).toISOString().slice(11, 19) + "Z"; }

  // ------------------------------------------------------------------ the live strips
  var strips = {};

  function initStrips() {
    all("[data-strip]").forEach(function (el) {
      var cells = [];
      var frag = document.createDocumentFragment();
      for (var i = 0; i < KEEP; i++) {
        var c = document.createElement("i");
        frag.appendChild(c);
        cells.push(c);
      }
      el.appendChild(frag);
      strips[el.getAttribute("data-strip")] = { el: el, cells: cells, rows: new Map(), last: null };
    });
  }

  function add(service, rows) {
    var s = strips[service];
    if (!s) { return; }
    rows.forEach(function (r) {
      // a final second is never revised: only seconds after the last one shown
      if (s.last !== null && r.t <= s.last && s.rows.has(r.t)) { return; }
      s.rows.set(r.t, r);
      if (s.last === null || r.t > s.last) { s.last = r.t; }
    });
    s.rows.forEach(function (_, t) { if (t <= s.last - KEEP) { s.rows.delete(t); } });
    render(service);
  }

  function render(service) {
    var s = strips[service];
    if (s.last === null) { return; }
    for (var i = 0; i < KEEP; i++) {
      var t = s.last - KEEP + 1 + i;
      var r = s.rows.get(t);
      var c = s.cells[i];
      var v = r ? (r.verdict || "unknown") : "";
      var cls = v ? "s-" + v : "";
      if (c.className !== cls) { c.className = cls; }
      c.title = r ? clock(t) + " " + v + " (api " + (r.api || "-") + ", smtp " + (r.smtp || "-") + ")" : "";
    }
    s.el.setAttribute("data-last", String(s.last));
    var label = document.querySelector('[data-strip-last="' + service + '"]');
    if (label) { label.textContent = clock(s.last); }
    var newest = s.rows.get(s.last);
    if (newest) {
      ["api", "smtp", "service"].forEach(function (ch) {
        var v = ch === "service" ? newest.verdict : newest[ch];
        var el = document.querySelector('[data-verdict="' + service + ":" + ch + '"]');
        if (el && v) { el.textContent = v; el.className = "verdict v-" + v; }
      });
    }
  }

  function onStatus(st) {
    Object.keys(st.components).forEach(function (id) {
      all('[data-component="' + id + '"]').forEach(function (el) {
        var status = st.components[id];
        el.className = "badge st-" + status;
        el.textContent = WORDS[status] || status;
      });
    });
    var ind = document.getElementById("indicator");
    if (ind) { ind.className = "indicator ind-" + st.indicator; ind.textContent = st.description; }
    var behind = document.getElementById("store-behind");
    if (behind && st.store_behind) {
      var late = Object.keys(st.store_behind).filter(function (k) { return st.store_behind[k] > 5; });
      behind.hidden = late.length === 0;
      behind.textContent = late.length ? "The store is behind (" + late.map(function (k) {
        return k + ": " + st.store_behind[k] + " s";
      }).join(", ") + "): the page shows stored seconds only; measuring goes on." : "";
    }
  }

  // an event stream whose state the page's #live-state shows (the browser reconnects)
  function stream(url) {
    var state = document.getElementById("live-state");
    var es = new EventSource(url);
    es.addEventListener("open", function () {
      if (state) { state.textContent = "live"; state.className = "live-state live"; }
    });
    es.addEventListener("error", function () {
      if (state) { state.textContent = "reconnecting…"; state.className = "live-state"; }
    });
    return es;
  }

  function connect() {
    if (!window.EventSource || !document.querySelector("[data-strip]")) { return; }
    var es = stream("/events");
    es.addEventListener("backfill", function (ev) {
      var data = JSON.parse(ev.data);
      Object.keys(data).forEach(function (svc) { add(svc, data[svc]); });
    });
    es.addEventListener("seconds", function (ev) {
      var by = {};
      JSON.parse(ev.data).forEach(function (r) { (by[r.service] = by[r.service] || []).push(r); });
      Object.keys(by).forEach(function (svc) { add(svc, by[svc]); });
    });
    es.addEventListener("status", function (ev) { onStatus(JSON.parse(ev.data)); });
  }

  // ------------------------------------------------------------------- writes (token)
  function message(text, ok) {
    var el = document.getElementById("msg");
    if (el) { el.textContent = text; el.className = ok ? "msg ok" : "msg"; }
  }

  function token() {
    var t = window.sessionStorage.getItem(TOKEN_KEY);
    if (!t) {
      t = window.prompt("The availmon API's bearer token (monitor.api_token); kept in this tab only");
      if (t) { window.sessionStorage.setItem(TOKEN_KEY, t.trim()); }
    }
    return t ? t.trim() : null;
  }

  function call(method, path, body) {
    var t = token();
    if (!t) { message("No token given: nothing was sent."); return Promise.resolve(null); }
    return fetch(path, {
      method: method,
      headers: { "Authorization": "Bearer " + t, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (resp.status === 401 || resp.status === 403) { window.sessionStorage.removeItem(TOKEN_KEY); }
        if (!resp.ok) { message((data && data.error) || ("HTTP " + resp.status)); return null; }
        return data;
      });
    }, function () { message("The daemon did not answer."); return null; });
  }

  function initIncident() {
    var box = document.querySelector("[data-incident]");
    var form = document.getElementById("note-form");
    if (!box || !form) { return; }
    var id = box.getAttribute("data-incident");
    var action = null;
    var labels = { ack: "Note (optional)", resolve: "Resolution note", callback: "What the vendor said", note: "Note" };
    all("[data-action]", box).forEach(function (btn) {
      btn.addEventListener("click", function () {
        action = btn.getAttribute("data-action");
        form.querySelector("[data-note-label]").textContent = labels[action];
        form.hidden = false;
        form.querySelector("[name=by]").focus();
      });
    });
    form.querySelector("[data-cancel]").addEventListener("click", function () { form.hidden = true; });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var by = form.querySelector("[name=by]").value.trim();
      var text = form.querySelector("[name=text]").value.trim();
      var body = { by: by || "web" };
      if (action === "note") {
        if (!text) { message("A note needs text."); return; }
        body.text = text;
      } else if (text) {
        body.note = text;
      }
      if (action === "callback" && !by) { message("Name who called back from the vendor."); return; }
      var path = "/api/v1/incidents/" + id + "/" + (action === "note" ? "notes" : action);
      call("POST", path, body).then(function (data) { if (data) { window.location.reload(); } });
    });
  }

  // An incident page follows its incident: when a status event newer than the page
  // carries another mark for it (a note, an acknowledgement, a resolution made anywhere),
  // the page reloads; with the form open, it says so instead of losing what is typed.
  function followIncident() {
    var el = document.querySelector("[data-live-incident]");
    if (!el || !window.EventSource) { return; }
    var id = el.getAttribute("data-live-incident");
    var mark = el.getAttribute("data-revision");
    var shownAt = parseFloat(el.getAttribute("data-shown-at"));
    var es = stream("/events?seconds=0");
    es.addEventListener("status", function (ev) {
      var st = JSON.parse(ev.data);
      var now = st.revisions && st.revisions[id];
      if (!now || now === mark || !(st.at > shownAt)) { return; }
      var form = document.getElementById("note-form");
      if (form && !form.hidden) {
        mark = now;
        message("This incident changed since the page was loaded: reload to see it.");
        return;
      }
      es.close();
      window.location.reload();
    });
  }

  function initMaintenance() {
    var form = document.getElementById("maintenance-form");
    if (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var start = form.querySelector("[name=start]").value;
        var end = form.querySelector("[name=end]").value;
        if (!start || !end) { message("From and until are both needed."); return; }
        call("POST", "/api/v1/maintenance", {
          service: form.querySelector("[name=service]").value,
          start: new Date(start).toISOString(),
          end: new Date(end).toISOString(),
          reason: form.querySelector("[name=reason]").value
        }).then(function (data) {
          if (data) {
            message("Window #" + data.id + " added." + (data.warnings && data.warnings.length ? " " + data.warnings.join(" ") : ""), true);
            window.setTimeout(function () { window.location.reload(); }, 600);
          }
        });
      });
    }
    all("[data-remove-maintenance]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var id = btn.getAttribute("data-remove-maintenance");
        call("DELETE", "/api/v1/maintenance/" + id).then(function (data) { if (data) { window.location.reload(); } });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initStrips();
    connect();
    initIncident();
    followIncident();
    initMaintenance();
  });
}());

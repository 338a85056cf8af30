// The public status page: the components' status and the overall indicator, pushed by
// /status/events (Server-Sent Events). Without JavaScript the page is complete as served.
(function () {
  "use strict";
  var WORDS = {
    operational: "Operational", degraded_performance: "Degraded performance",
    partial_outage: "Partial outage", major_outage: "Major outage",
    under_maintenance: "Under maintenance"
  };
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.EventSource) { return; }
    var es = new EventSource("/status/events");
    es.addEventListener("status", function (ev) {
      var st = JSON.parse(ev.data);
      Object.keys(st.components).forEach(function (id) {
        Array.prototype.forEach.call(document.querySelectorAll('[data-component="' + id + '"]'), function (el) {
          el.className = "badge st-" + st.components[id];
          el.textContent = WORDS[st.components[id]] || st.components[id];
        });
      });
      var ind = document.getElementById("indicator");
      if (ind) { ind.className = "indicator ind-" + st.indicator; ind.textContent = st.description; }
    });
  });
}());

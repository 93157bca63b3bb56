// wahub console: live refresh and small conveniences. Every page works
// without it; it only spares a reload.
(function () {
  "use strict";

  // Select-all checkboxes: data-select-all="name" toggles inputs of that name.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.dataset && t.dataset.selectAll) {
      var form = t.form || document;
      form.querySelectorAll('input[type=checkbox][name="' + t.dataset.selectAll + '"]').forEach(function (b) {
        b.checked = t.checked;
      });
    }
  });

  if (!document.body.hasAttribute("data-live") || !window.EventSource) return;
  var status = document.getElementById("live-status");
  var busy = false, again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (r) {
        if (r.redirected || r.status === 401) { location.reload(); throw new Error("signed out"); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var focused = document.activeElement && document.activeElement.id;
        document.querySelectorAll("[data-live-region]").forEach(function (old) {
          var fresh = doc.getElementById(old.id);
          // Keep a region the user is typing in, or has typed in.
          if (!fresh || old.contains(document.activeElement) && /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
          var typed = [].some.call(old.querySelectorAll("input:not([type=hidden]), textarea"), function (f) {
            return f.type === "checkbox" || f.type === "radio" ? f.checked !== f.defaultChecked : f.value !== f.defaultValue;
          });
          if (typed) return;
          if (old.innerHTML !== fresh.innerHTML) old.replaceWith(fresh);
        });
        if (focused && document.activeElement === document.body) {
          var el = document.getElementById(focused);
          if (el) el.focus();
        }
        document.body.dataset.refreshed = String(Date.now());
        soon();
      })
      .catch(function () {})
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  // Figures still being computed ask for another look shortly.
  function soon() {
    if (document.querySelector("[data-refresh-soon]")) setTimeout(refresh, 1000);
  }
  soon();

  var es = new EventSource("/console/live");
  es.addEventListener("change", refresh);
  es.onopen = function () {
    if (status) { status.textContent = "Live"; status.classList.remove("off"); }
    // What committed between this page's rendering and the stream's start
    // (or while it reconnected) has no event of its own.
    refresh();
  };
  es.onerror = function () { if (status) { status.textContent = "Reconnecting…"; status.classList.add("off"); } };
})();

/* werkplaats: the little JavaScript every page needs. No inline scripts (the CSP forbids them).
 *
 * When an htmx request fails (the server answers 4xx/5xx, or cannot be reached), htmx swaps nothing, so
 * the page would look as if nothing happened. Say so instead, in the page's alert region
 * (#wp-htmx-error in base.html, aria-live="assertive", its text translated there), and clear it after
 * the next request that works. Charts are drawn by charts.js (templates/charts/figure.html).
 */
(function () {
  "use strict";

  function region() {
    return document.getElementById("wp-htmx-error");
  }

  function show(code) {
    var el = region();
    if (!el) return;
    var box = document.createElement("div");
    box.className = "utrecht-alert utrecht-alert--error";
    var p = document.createElement("p");
    p.className = "utrecht-alert__message";
    p.textContent = el.getAttribute("data-message").replace("{code}", code);
    box.appendChild(p);
    el.replaceChildren(box);
  }

  document.addEventListener("htmx:responseError", function (evt) {
    show(String(evt.detail && evt.detail.xhr ? evt.detail.xhr.status : "?"));
  });
  document.addEventListener("htmx:sendError", function () { show("—"); });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var el = region();
    if (el && evt.detail && evt.detail.successful) el.replaceChildren();
  });
})();

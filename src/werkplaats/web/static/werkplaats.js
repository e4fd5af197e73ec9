/* werkplaats: the little JavaScript the pages need. No inline scripts (the CSP forbids them).
 *
 * Charts: an element with data-vega-spec="ID" is rendered from the JSON in <script type="application/json"
 * id="ID"> with vega-embed, using the bundled expression interpreter (ast: true) so that Vega never compiles
 * code with Function() — the page CSP has no 'unsafe-eval'. Also after htmx swaps in new content.
 */
(function () {
  "use strict";

  function renderCharts(root) {
    if (typeof window.vegaEmbed !== "function") return;
    var views = (root || document).querySelectorAll("[data-vega-spec]:not([data-vega-done])");
    Array.prototype.forEach.call(views, function (el) {
      var source = document.getElementById(el.getAttribute("data-vega-spec"));
      if (!source) return;
      el.setAttribute("data-vega-done", "");
      var spec = JSON.parse(source.textContent);
      window.vegaEmbed(el, spec, { ast: true, actions: false, renderer: "svg" }).catch(function (err) {
        el.setAttribute("data-vega-error", String(err && err.message || err));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { renderCharts(document); });
  document.addEventListener("htmx:afterSettle", function (evt) { renderCharts(evt.target); });
})();

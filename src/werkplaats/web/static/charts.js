// Draw every chart of the page: <div class="wp-chart__view" data-spec="{Vega-Lite JSON}">, from templates/charts/figure.html.
// NB: the page's CSP has no 'unsafe-eval': vega-embed runs with the vega-interpreter (ast: true), SVG renderer.
// Separate from werkplaats.js's [data-vega-spec] charts: this one draws [data-spec] (templates/charts/figure.html).
// Without JavaScript the figure's data table carries the same numbers.
(function () {
  "use strict";
  function draw(root) {
    if (typeof vegaEmbed === "undefined" || typeof vega === "undefined") return;
    root.querySelectorAll(".wp-chart__view[data-spec]:not([data-drawn])").forEach(function (el) {
      el.setAttribute("data-drawn", "1");
      var spec = JSON.parse(el.getAttribute("data-spec"));
      var opts = {ast: true, renderer: "svg", actions: false};
      // NB: vega-embed's build bundles vega-interpreter and uses it with ast: true when vega has none
      if (vega.expressionInterpreter) opts.expr = vega.expressionInterpreter;
      vegaEmbed(el, spec, opts).then(function (result) {
        var svg = el.querySelector("svg");
        if (svg) svg.setAttribute("aria-hidden", "true"); // NB: the figure's table is the text alternative
        el.setAttribute("data-rendered", "1");
      }).catch(function (err) {
        el.setAttribute("data-error", String(err && err.message || err));
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
})();

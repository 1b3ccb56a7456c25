/* Draw each report's chart from its JSON data block (no inline scripts: the CSP allows only
   files from this site). The same numbers are in the table beside each chart. */
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") { return; }
  var palette = ["#b3261e", "#1b6e20", "#1f5fa8", "#a86b00", "#6b3fa0", "#00796b"];
  var canvases = document.querySelectorAll("canvas[data-chart-source]");
  Array.prototype.forEach.call(canvases, function (canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart-source"));
    if (!source) { return; }
    var data;
    try { data = JSON.parse(source.textContent); } catch (e) { return; }
    data.datasets.forEach(function (ds, i) {
      ds.backgroundColor = palette[i % palette.length];
      ds.borderColor = palette[i % palette.length];
    });
    new window.Chart(canvas, {
      type: data.type || "bar",
      data: { labels: data.labels, datasets: data.datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { display: data.datasets.length > 1 } }
      }
    });
  });
})();

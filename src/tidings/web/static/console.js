// The console's few behaviours beyond htmx: drawing the charts a page describes in JSON.
function drawCharts(root) {
  if (typeof Chart === "undefined") { return; }
  root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    if (canvas.dataset.drawn) { return; }
    canvas.dataset.drawn = "1";
    new Chart(canvas, JSON.parse(canvas.dataset.chart));
  });
}
document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });

// The segment builder's "add a condition": a copy of the last row, emptied.
function addBuilderRow() {
  var rows = document.querySelectorAll("#builder .builder-row");
  if (!rows.length) { return; }
  var copy = rows[rows.length - 1].cloneNode(true);
  copy.querySelector("input[name=value]").value = "";
  rows[rows.length - 1].after(copy);
}

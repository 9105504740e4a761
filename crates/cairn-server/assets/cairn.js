// Cairn's web UI script: draws the line charts of metric histories. Each
// `<div class="chart" data-src="URL">` gets the JSON at URL ({key, x, y}) drawn with
// uPlot, which draws 100,000 points in a few tens of milliseconds. The time each took
// is left in `data-rendered-ms` (the benchmark reads it).
"use strict";

function drawChart(box) {
  const started = performance.now();
  fetch(box.dataset.src, { credentials: "same-origin" })
    .then((r) => {
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      return r.json();
    })
    .then((data) => {
      const plot = box.querySelector(".plot");
      const width = Math.max(320, Math.min(560, box.parentElement.clientWidth - 24));
      new uPlot({
        width: width,
        height: 260,
        scales: { x: { time: false } },
        axes: [{ label: data.x_label }, {}],
        series: [{ label: data.x_label }, { label: data.key, stroke: "#2f6f9f", width: 1 }],
      }, [data.x, data.y], plot);
      box.dataset.points = String(data.x.length);
      box.dataset.renderedMs = String(Math.round(performance.now() - started));
    })
    .catch((e) => {
      box.querySelector(".plot").textContent = "could not load the chart: " + e.message;
      box.dataset.error = e.message;
    });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".chart[data-src]").forEach(drawChart);
});
